"""Turns the bytes of a container's log stream into (stream, line) pairs:
Docker multiplexes stdout and stderr into 8-byte-header frames unless the
container has a TTY, in which case the stream is raw terminal output."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

_HEADER = struct.Struct(">BxxxI")  # stream type, 3 padding bytes, payload size
_STREAMS = {0: "stdout", 1: "stdout", 2: "stderr"}  # 0 is stdin, echoed as stdout


class LineSplitter:
    """Collects chunks of one stream and yields whole lines; a line may span
    any number of chunks, and a multi-byte character may be cut between them,
    so bytes are only decoded once a line is complete."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> list[str]:
        self._pending += chunk
        if b"\n" not in chunk:
            return []
        *complete, rest = bytes(self._pending).split(b"\n")
        self._pending = bytearray(rest)
        return [_decode(line) for line in complete]

    def flush(self) -> list[str]:
        """The last line when the stream ended without a newline."""
        if not self._pending:
            return []
        line = _decode(bytes(self._pending))
        self._pending.clear()
        return [line]


def _decode(raw: bytes) -> str:
    # A TTY turns "\n" into "\r\n"; scripts expect the line without either.
    return raw.removesuffix(b"\r").decode("utf-8", errors="replace")


class LogDemuxer:
    """Decodes Docker's multiplexed log stream, chunk by chunk as it arrives
    (a frame header or payload may be cut anywhere between chunks)."""

    def __init__(self, *, tty: bool = False) -> None:
        self._tty = tty
        self._buffer = bytearray()
        self._splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        if self._tty:
            return [("stdout", line) for line in self._splitters["stdout"].feed(chunk)]
        self._buffer += chunk
        lines: list[tuple[str, str]] = []
        while len(self._buffer) >= _HEADER.size:
            kind, size = _HEADER.unpack_from(self._buffer)
            end = _HEADER.size + size
            if len(self._buffer) < end:
                break
            stream = _STREAMS.get(kind, "stdout")
            payload = bytes(self._buffer[_HEADER.size:end])
            del self._buffer[:end]
            lines.extend((stream, line) for line in self._splitters[stream].feed(payload))
        return lines

    def flush(self) -> list[tuple[str, str]]:
        """Unterminated last lines of each stream, once the stream has ended."""
        return [(stream, line)
                for stream, splitter in self._splitters.items()
                for line in splitter.flush()]


def demux_lines(chunks: Iterable[bytes], *, tty: bool = False) -> Iterator[tuple[str, str]]:
    """Every (stream, line) of a whole log stream given as byte chunks."""
    demuxer = LogDemuxer(tty=tty)
    for chunk in chunks:
        yield from demuxer.feed(chunk)
    yield from demuxer.flush()
