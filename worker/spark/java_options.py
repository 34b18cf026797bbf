"""The JVM flags a Spark 3.5 driver or executor needs on Java 17, and adding them to a Spark
configuration unless the user chose their own."""

from __future__ import annotations

from collections.abc import Mapping

# Spark's own launcher adds these for spark-submit's JVM (JavaModuleOptions), but a driver
# launched by a standalone worker in cluster mode, and its executors, only get what
# spark.{driver,executor}.extraJavaOptions say: without them the driver dies with
# IllegalAccessError (sun.nio.ch.DirectBuffer).
JAVA17_OPTIONS = " ".join([
    "-XX:+IgnoreUnrecognizedVMOptions",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.cs=ALL-UNNAMED",
    "--add-opens=java.base/sun.security.action=ALL-UNNAMED",
    "--add-opens=java.base/sun.util.calendar=ALL-UNNAMED",
    "-Djdk.reflect.useDirectMethodHandle=false",
])

JAVA_OPTION_KEYS = ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions")


def with_java17_options(conf: Mapping[str, str]) -> dict[str, str]:
    """A copy of `conf` with the Java 17 options as driver and executor extraJavaOptions,
    leaving any key the user already set untouched (their value wins, even if empty)."""
    result = dict(conf)
    for key in JAVA_OPTION_KEYS:
        result.setdefault(key, JAVA17_OPTIONS)
    return result
