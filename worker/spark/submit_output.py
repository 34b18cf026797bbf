"""Reading spark-submit's output: the submission id of a cluster-mode driver, and the sign
that it is speaking the legacy protocol to a REST port (where it would hang)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# REST gateway: "INFO RestSubmissionClient: Submission successfully created as driver-...";
# legacy gateway (o.a.s.deploy.Client): "Driver successfully submitted as driver-...".
SUBMISSION_LINE = re.compile(
    r"(?:Submission successfully created|Driver successfully submitted) as (driver-[\w-]+)")
# One line of the CreateSubmissionResponse JSON spark-submit prints after it.
SUBMISSION_JSON = re.compile(r'"submissionId"\s*:\s*"(driver-[\w-]+)"')
LEGACY_HANG = "Too large frame"


def parse_submission_id(lines: Iterable[str]) -> str | None:
    """The first driver id spark-submit reports, or None (client mode, or it failed)."""
    scanner = SubmitOutputScanner()
    for line in lines:
        scanner.feed(line)
        if scanner.submission_id:
            return scanner.submission_id
    return None


@dataclass
class SubmitOutputScanner:
    """Feed it spark-submit's lines (stdout and stderr) as they arrive."""

    submission_id: str | None = None
    legacy_protocol_mismatch: bool = False

    def feed(self, line: str) -> None:
        if self.submission_id is None:
            match = SUBMISSION_LINE.search(line) or SUBMISSION_JSON.search(line)
            if match:
                self.submission_id = match.group(1)
        if LEGACY_HANG in line:
            self.legacy_protocol_mismatch = True


def legacy_mismatch_message(master: str) -> str:
    """What to tell the user when spark-submit shows the legacy hang signature."""
    return (f"spark-submit spoke Spark's legacy RPC protocol to {master}, which is a REST "
            "submission port, and would hang there (\"Too large frame\"); add "
            "`--conf spark.master.rest.enabled=true` to the spark-submit command")
