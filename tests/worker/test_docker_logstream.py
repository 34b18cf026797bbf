"""Decoding Docker's multiplexed log stream, however the bytes are chunked."""

from __future__ import annotations

import itertools
import struct

from hypothesis import given
from hypothesis import strategies as st

from harrier.worker.docker.logstream import LogDemuxer, demux_lines

STREAM_IDS = {"stdout": 1, "stderr": 2}


def frame(stream: str, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", STREAM_IDS[stream], len(payload)) + payload


def rechunk(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    bounds = [0, *points, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


lines_strategy = st.lists(
    st.tuples(st.sampled_from(["stdout", "stderr"]),
              st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                             blacklist_characters="\n\r"), max_size=30)),
    max_size=20)


@given(lines=lines_strategy, cuts=st.lists(st.integers(min_value=0), max_size=30),
       split_payloads=st.booleans())
def test_lines_come_out_per_stream_in_order_whatever_the_chunking(
        lines: list[tuple[str, str]], cuts: list[int], split_payloads: bool) -> None:
    frames = b""
    for stream, line in lines:
        payload = (line + "\n").encode()
        if split_payloads and len(payload) > 1:
            # A line can also be cut across two frames of its stream.
            half = len(payload) // 2
            frames += frame(stream, payload[:half]) + frame(stream, payload[half:])
        else:
            frames += frame(stream, payload)
    decoded = list(demux_lines(rechunk(frames, cuts)))
    for stream in ("stdout", "stderr"):
        assert [line for kind, line in decoded if kind == stream] == \
            [line for kind, line in lines if kind == stream]


def test_a_multibyte_character_cut_between_frames_is_decoded_whole() -> None:
    text = "température ✓\n".encode()
    cut = text.index("✓".encode()) + 1
    chunks = [frame("stdout", text[:cut]), frame("stdout", text[cut:])]
    assert list(demux_lines(chunks)) == [("stdout", "température ✓")]


def test_unterminated_last_lines_are_flushed_at_the_end() -> None:
    chunks = [frame("stdout", b"a\nlast"), frame("stderr", b"oops")]
    assert list(demux_lines(chunks)) == [("stdout", "a"), ("stdout", "last"), ("stderr", "oops")]


def test_tty_stream_is_raw_and_loses_carriage_returns() -> None:
    demuxer = LogDemuxer(tty=True)
    assert demuxer.feed(b"one\r\ntw") == [("stdout", "one")]
    assert demuxer.feed(b"o\r\n") == [("stdout", "two")]
    assert demuxer.flush() == []
