"""Reading a cluster-mode driver's stdout/stderr as they grow, from its worker's web UI
(/log/?driverId=...&logType=...&offset=...), and picking the driver's own error line."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

LOG_TYPES = ("stdout", "stderr")
# renderLog's first line: "==== Bytes 0-4936 of 4936 of /work/driver-.../stderr ====".
HEADER = re.compile(r"==== Bytes (\d+)-(\d+) of (\d+) of .*? ====\n?")
MAX_ERROR_LINE = 1000


@dataclass
class LogCursor:
    offset: int = 0  # bytes of the file already turned into lines
    partial: str = ""  # a line fragment we saw but did not emit yet


@dataclass
class DriverLogReader:
    """Incremental reader of one driver's logs over HTTP; works for remote workers."""

    http: httpx.Client
    worker_web_url: str
    submission_id: str
    chunk_bytes: int = 64 * 1024
    max_chunks_per_call: int = 64
    cursors: dict[str, LogCursor] = field(default_factory=dict)

    def read_new_lines(self, log_type: str, *, final: bool = False) -> list[str]:
        """Complete lines appended since the last call; with `final`, also the last
        unterminated line. Raises httpx.HTTPError when the worker UI cannot be read."""
        cursor = self.cursors.setdefault(log_type, LogCursor())
        lines: list[str] = []
        # Bounded per call so a huge backlog cannot starve the status polling.
        for _ in range(self.max_chunks_per_call):
            text, start, end, total = self._fetch(log_type, cursor.offset)
            if end <= start or not text:
                break
            last_newline = text.rfind("\n")
            if last_newline < 0 and end - start < self.chunk_bytes:
                # An unterminated tail: wait for its newline (or the end of the driver).
                break
            # No newline in a full chunk: a line longer than a chunk, emitted in pieces.
            consumed = text if last_newline < 0 else text[: last_newline + 1]
            cursor.offset = start + len(consumed.encode("utf-8"))
            lines.extend(consumed.splitlines())
            if end >= total:
                break
        if final:
            text, start, end, _ = self._fetch(log_type, cursor.offset)
            if end > start and text:
                lines.extend(text.splitlines())
                cursor.offset = end
        return lines

    def _fetch(self, log_type: str, offset: int) -> tuple[str, int, int, int]:
        response = self.http.get(f"{self.worker_web_url}/log/", params={
            "driverId": self.submission_id, "logType": log_type,
            "offset": offset, "byteLength": self.chunk_bytes})
        response.raise_for_status()
        match = HEADER.match(response.text)
        if match is None:
            import httpx  # lazy: flows are parsed without paying for the HTTP client

            raise httpx.DecodingError(
                f"unexpected answer from {response.url}: {response.text[:200]!r}")
        start, end, total = (int(g) for g in match.groups())
        # A driver directory that does not exist yet answers "Bytes 0-0 of 0" plus an error.
        return response.text[match.end():], start, end, total


class ErrorLineTracker:
    """Feed it a driver's stderr lines; best() is the line that says why it failed: the root
    cause of the last uncaught exception, else the last exception-looking line."""

    EXCEPTION_IN_THREAD = re.compile(r'^Exception in thread "[^"]*" (.+)$')
    CAUSED_BY = re.compile(r"^Caused by: (.+)$")
    BARE_EXCEPTION = re.compile(r"^(?:[A-Za-z_$][\w$]*\.)+[\w$]*(?:Exception|Error)\b(?::.*)?$")
    PYTHON_ERROR = re.compile(r"^(?:[A-Za-z_][\w.]*)?(?:Error|Exception)\b: .+$")

    def __init__(self) -> None:
        self.head: str | None = None
        self.causes: list[str] = []
        self.others: deque[str] = deque(maxlen=5)

    def feed(self, line: str) -> None:
        line = line.rstrip()
        if match := self.EXCEPTION_IN_THREAD.match(line):
            self.head, self.causes = match.group(1), []
        elif match := self.CAUSED_BY.match(line):
            if self.head is not None:
                self.causes.append(match.group(1))
            else:
                self.others.append(match.group(1))
        elif self.BARE_EXCEPTION.match(line) or self.PYTHON_ERROR.match(line):
            self.others.append(line)

    def best(self) -> str | None:
        if self.head is not None:
            line = self.causes[-1] if self.causes else self.head
        elif self.others:
            line = self.others[-1]
        else:
            return None
        return line if len(line) <= MAX_ERROR_LINE else line[:MAX_ERROR_LINE] + "..."


def cluster_exception_line(message: str | None) -> str | None:
    """The exception line of the master's "Exception from the cluster:\\n<exc>\\n\\t<frames>"
    message (a driver that could not even be launched: missing jar ...)."""
    if not message:
        return None
    for line in message.splitlines():
        text = line.strip()
        if text and not line.startswith("\t") and not text.startswith("Exception from the"):
            return text
    return None
