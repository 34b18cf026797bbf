"""Kestra's in-band protocol: a line `::{"outputs": {...}}::` printed by a
script sets task outputs (Kestra's `kestra` PyPI helper prints exactly that)."""

from __future__ import annotations

import json
from typing import Any

_PREFIX = "::{"
_SUFFIX = "}::"


def parse_protocol_line(line: str) -> dict[str, Any] | None:
    """Return the decoded message if `line` is a protocol line, else None.

    A protocol line is a JSON object framed by `::` on both sides. A line that
    looks framed but is not valid JSON is ordinary output, not an error: scripts
    print all sorts of things.
    """
    text = line.strip()
    if not (text.startswith(_PREFIX) and text.endswith(_SUFFIX)):
        return None
    try:
        message = json.loads(text[2:-2])
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def merge_outputs(outputs: dict[str, Any], message: dict[str, Any]) -> None:
    """Fold the `outputs` of one protocol message into `outputs` (later wins)."""
    new = message.get("outputs")
    if isinstance(new, dict):
        outputs.update(new)
