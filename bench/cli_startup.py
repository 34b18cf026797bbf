"""`harrier run flows/hello.yaml` on the embedded default against
`harrier --version`, each as a fresh process: the median wall time of
repeated runs, and the difference (what running a flow costs beyond starting
the command).

The sources are byte-compiled first, as the first run on a normal machine
does (this machine sets PYTHONDONTWRITEBYTECODE, which would make every run
compile Harrier from source).

    .venv/bin/python bench/cli_startup.py [--runs 9]
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HARRIER = [sys.executable, "-m", "harrier"]


def wall(command: list[str], runs: int) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARRIER_")}
    samples = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples[1:])  # the first run warms the page cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    for folder in ("harrier", "common", "worker", "scheduler"):
        compileall.compile_dir(ROOT / folder, quiet=1)
    version = wall([*HARRIER, "--version"], args.runs)
    validate = wall([*HARRIER, "validate", "flows/hello.yaml"], args.runs)
    run = wall([*HARRIER, "run", "-q", "flows/hello.yaml"], args.runs)
    print(f"median of {args.runs} runs, each a fresh process")
    print(f"  harrier --version                 {version * 1000:7.0f} ms")
    print(f"  harrier validate flows/hello.yaml {validate * 1000:7.0f} ms")
    print(f"  harrier run flows/hello.yaml      {run * 1000:7.0f} ms "
          f"(+{(run - version) * 1000:.0f} ms over --version)")


if __name__ == "__main__":
    main()
