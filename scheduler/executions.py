"""Create and start executions: the functions live in common.launch, where a
worker finds them too (a Subflow task starts its child execution)."""

from __future__ import annotations

from harrier.common.launch import (
    CORRELATION_ID,
    create_execution,
    resume_start,
    start_execution,
)

__all__ = ["CORRELATION_ID", "create_execution", "resume_start", "start_execution"]
