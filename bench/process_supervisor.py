"""What tying a task's processes to its worker costs: the Process runner
running `true` (its process group registered with runners/group_reaper, which
kills it when the worker dies) against `sh -c true` started directly, in one run.
Prints medians and the difference per task.

    .venv/bin/python bench/process_supervisor.py [--runs 300]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harrier.worker.runners.base import RunRequest  # noqa: E402
from harrier.worker.runners.process import ProcessRunner  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="harrier-bench-"))
    runner = ProcessRunner()

    def supervised() -> None:
        runner.run(RunRequest(commands=["true"], workdir=workdir))

    def direct() -> None:
        subprocess.run(["/bin/sh", "-c", "true"], cwd=workdir, stdin=subprocess.DEVNULL,
                       capture_output=True, start_new_session=True, check=True)

    shapes: dict[str, Callable[[], None]] = {"sh -c true": direct,
                                             "Process runner": supervised}
    samples: dict[str, list[float]] = {name: [] for name in shapes}
    for _ in range(args.runs):  # alternate, so a drifting load weighs on both
        for name, action in shapes.items():
            started = time.perf_counter()
            action()
            samples[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    for name, value in medians.items():
        print(f"{name:>16}: {value:6.2f} ms (median of {args.runs})")
    print(f"{'difference':>16}: {medians['Process runner'] - medians['sh -c true']:6.2f} ms "
          f"per task (ratio {medians['Process runner'] / medians['sh -c true']:.2f})")


if __name__ == "__main__":
    main()
