"""Per-task overhead of the Docker runner against the Process runner for a
`true` task: median of repeated runs, printed with their ratio.

    .venv/bin/python bench/runners_docker.py [--runs 20] [--host unix:///... --image IMAGE]

Without --host it starts a private dockerd (root, .ci/install-docker.sh) with
the tests' busybox image, as tests/fixtures/docker.py does."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harrier.worker.runners.base import RunRequest
from harrier.worker.runners.docker import DockerRunner
from tests.fixtures.docker import private_docker_engine


def median_seconds(task: Callable[[], object], runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        task()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        task()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


@contextlib.contextmanager
def engine_address(host: str | None, image: str | None) -> Iterator[tuple[str, str]]:
    if host is not None:
        yield host, image or "busybox:latest"
        return
    with private_docker_engine() as engine:
        yield engine.host, engine.image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--host", help="engine address; default: start a private dockerd")
    parser.add_argument("--image", help="image with /bin/sh and true (with --host)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, engine_address(args.host, args.image) as (
            host, image):
        workdir = Path(tmp)

        def true_request(options: dict[str, object] | None = None) -> RunRequest:
            return RunRequest(commands=["true"], workdir=workdir, options=options or {})

        try:
            from harrier.worker.runners.process import ProcessRunner
        except ImportError:
            baseline_name = "subprocess /bin/sh -c true"

            def baseline() -> object:
                return subprocess.run(["/bin/sh", "-c", "true"], check=True)
        else:
            baseline_name = "ProcessRunner"
            process_runner = ProcessRunner()

            def baseline() -> object:
                return process_runner.run(true_request())

        docker_runner = DockerRunner(host)
        options: dict[str, object] = {"containerImage": image, "pullPolicy": "NEVER"}

        def docker() -> object:
            result = docker_runner.run(true_request(options))
            assert result.exit_code == 0, result
            return result

        base = median_seconds(baseline, args.runs)
        container = median_seconds(docker, args.runs)
        docker_runner.close()
        cli = shutil.which("docker")
        cli_seconds = None
        if cli is not None:
            # The docker CLI on the same engine, for reference only.
            def docker_cli() -> object:
                return subprocess.run([cli, "-H", host, "run", "--rm", image, "true"],
                                      check=True, capture_output=True)
            cli_seconds = median_seconds(docker_cli, args.runs)

    print(f"true task, median of {args.runs} runs (after 2 warm-up runs)")
    print(f"  {baseline_name:<28} {base * 1000:8.1f} ms")
    print(f"  {'DockerRunner':<28} {container * 1000:8.1f} ms")
    if cli_seconds is not None:
        print(f"  {'docker run --rm (CLI)':<28} {cli_seconds * 1000:8.1f} ms")
    print(f"  ratio Docker / {baseline_name}: {container / base:.1f}x "
          f"(+{(container - base) * 1000:.0f} ms per task)")


if __name__ == "__main__":
    main()
