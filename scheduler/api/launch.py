"""Create and start one execution for the API and webhooks: validate inputs,
store it, enqueue its canvas; never leave a CREATED execution nobody runs."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import kombu.exceptions
import redis

from harrier.common.errors import StoreUnavailable
from harrier.common.execution import Execution, new_id
from harrier.common.flow import Flow
from harrier.common.state import State
from harrier.scheduler.api.context import ApiContext
from harrier.scheduler.api.errors import ApiError
from harrier.scheduler.executions import create_execution, start_execution

log = logging.getLogger(__name__)

# `?wait=true` holds a worker thread; past this the caller gets the execution as it is.
WAIT_LIMIT_SECONDS = 600.0


@dataclass
class Upload:
    """A FILE input sent as a multipart file part."""

    field: str
    filename: str
    stream: BinaryIO


def save_uploads(root: Path, uploads: list[Upload]) -> tuple[Path | None, dict[str, str]]:
    """Copy uploaded files under root/uploads/<batch>/<input>/<name>; the paths
    become the FILE inputs' values."""
    if not uploads:
        return None, {}
    batch = root / "uploads" / new_id()
    paths: dict[str, str] = {}
    for upload in uploads:
        name = Path(upload.filename.replace("\\", "/")).name.strip() or upload.field
        if name in (".", ".."):
            name = upload.field
        target = batch / upload.field / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            shutil.copyfileobj(upload.stream, out)
        paths[upload.field] = str(target)
    return batch, paths


def launch(ctx: ApiContext, flow: Flow, inputs: Mapping[str, Any], *,
           trigger: dict[str, Any], labels: Mapping[str, str] | None = None,
           uploads: list[Upload] | None = None, wait: bool = False,
           revision: int | None = None, as_created: bool = False) -> Execution:
    """Create (InputError names every bad input) and start an execution.
    `revision`: the store revision `flow` was read at. `as_created`: answer the
    execution as created rather than read it back (one round trip less), unless
    flow concurrency may have queued or cancelled it."""
    if flow.disabled:
        raise ApiError(422, f"flow {flow.namespace}.{flow.id} is disabled")
    batch, paths = save_uploads(ctx.settings.work_root, uploads or [])
    try:
        execution = create_execution(ctx.store, flow, {**inputs, **paths}, trigger=trigger,
                                     labels=labels, revision=revision)
    except BaseException:
        if batch is not None:
            shutil.rmtree(batch, ignore_errors=True)
        raise
    try:
        start_execution(ctx.celery_app, flow, execution, store=ctx.store)
    except (kombu.exceptions.OperationalError, redis.ConnectionError, OSError) as exc:
        # The broker refused the canvas: fail the execution rather than leave it
        # CREATED forever, and tell the caller the service is unavailable.
        reason = f"could not enqueue the execution: {exc}"
        try:
            ctx.store.change_execution_state(execution.id, State.FAILED, error=reason,
                                             only_from=(State.CREATED,))
        except StoreUnavailable:
            log.error("execution %s left CREATED: broker and store both down", execution.id)
        raise ApiError(503, f"the broker is unreachable, execution {execution.id} was "
                       f"not started: {exc}", headers={"Retry-After": "5"}) from exc
    if wait:
        return ctx.store.wait_terminal(execution.id, WAIT_LIMIT_SECONDS)
    if as_created and flow.concurrency is None:
        return execution
    return ctx.store.get_execution(execution.id)
