# syntax=docker/dockerfile:1
# Harrier: one image for `harrier scheduler`, `harrier worker` and the bundled
# Spark master/worker of compose.yaml. Java 17 and the Spark client are inside
# so workers run spark-submit as a plain subprocess (no container per task).
#
#   docker build -t harrier:latest .
#   docker build --build-arg SPARK_VERSION=3.5.4 -t harrier:spark-3.5.4 .

# bookworm, not the floating tag: python:3.11-slim moved to Debian 13, which
# no longer ships openjdk-17-jre-headless.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

# The Spark client comes from PyPI (pyspark ships spark-submit, spark-class and
# the jars), so the build needs no download outside the package registries.
ARG SPARK_VERSION=3.5.5
ARG HARRIER_UID=10001

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# man1 must exist or the JRE's postinst fails on slim images.
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        openjdk-17-jre-headless \
        procps \
    && rm -rf /var/lib/apt/lists/*

# Spark before Harrier: it is the large, slow-changing layer.
RUN pip install "pyspark==${SPARK_VERSION}" \
    && SPARK_DIR="$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')" \
    && ln -s "${SPARK_DIR}" /opt/spark \
    && /opt/spark/bin/spark-submit --version 2>&1 | grep -q "version ${SPARK_VERSION}"

ENV SPARK_VERSION=${SPARK_VERSION} \
    SPARK_HOME=/opt/spark \
    PATH=/opt/spark/bin:${PATH}

# .dockerignore lets only pyproject.toml, README.md, the three packages and
# flows/ through; flows/ may be absent from a fresh clone, hence the test.
COPY . /src
RUN pip install /src \
    && harrier --help >/dev/null \
    && groupadd --system --gid "${HARRIER_UID}" harrier \
    && useradd --system --uid "${HARRIER_UID}" --gid harrier \
        --home-dir /home/harrier --create-home --shell /usr/sbin/nologin harrier \
    && mkdir -p /app/flows /app/work /app/storage \
    && if [ -d /src/flows ]; then cp -R /src/flows/. /app/flows/; fi \
    && rm -rf /src \
    && chown -R harrier:harrier /app

WORKDIR /app

ENV HARRIER_FLOWS_DIR=/app/flows \
    HARRIER_STORAGE_DIR=/app/storage \
    HARRIER_API_HOST=0.0.0.0 \
    HARRIER_API_PORT=8080 \
    SPARK_WORKER_DIR=/app/work

USER harrier
EXPOSE 8080

# Checks the API of the default command (the scheduler). Workers and the Spark
# services override it (compose.yaml) or use their own probes (helm chart).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HARRIER_API_PORT', '8080'), timeout=4)"]

ENTRYPOINT ["harrier"]
CMD ["scheduler"]
