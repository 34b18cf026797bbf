"""Create and start one execution for the API and webhooks: validate inputs,
store it, enqueue its canvas; never leave a CREATED execution nobody runs."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, BinaryIO

import kombu.exceptions
import redis

from harrier.common.errors import StoreUnavailable
from harrier.common.execution import Execution, new_id
from harrier.common.flow import Flow
from harrier.common.state import State
from harrier.common.storage import Storage, execution_prefix, input_file_path, storage_for
from harrier.scheduler.api.context import ApiContext
from harrier.scheduler.api.errors import ApiError
from harrier.scheduler.control import resume_execution
from harrier.scheduler.executions import create_execution, start_execution

log = logging.getLogger(__name__)

# `?wait=true` holds a worker thread; past this the caller gets the execution as it is.
WAIT_LIMIT_SECONDS = 600.0
_ID = re.compile(r"[a-zA-Z0-9][.a-zA-Z0-9_-]*")


@dataclass
class Upload:
    """A FILE input sent as a multipart file part."""

    field: str
    filename: str
    stream: BinaryIO


def save_uploads(storage: Storage, namespace: str, flow_id: str, execution_id: str,
                 uploads: list[Upload], *, folder: str = "inputs") -> dict[str, str]:
    """Store uploaded files as Kestra does (kestra:///<ns>/<flow>/executions/<id>/
    inputs/<input>/<name>); the URIs become the FILE inputs' values."""
    uris: dict[str, str] = {}
    for upload in uploads:
        name = PurePosixPath(upload.filename.replace("\\", "/")).name.strip()
        if name in ("", ".", ".."):
            name = upload.field
        if not _ID.fullmatch(upload.field):
            raise ApiError(422, f"file part {upload.field!r}: not an input name")
        uris[upload.field] = storage.put(input_file_path(
            namespace, flow_id, execution_id, upload.field, name, folder=folder),
            upload.stream)
    return uris


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
    execution_id = new_id()
    storage = storage_for(ctx.settings.storage_root)
    try:
        paths = save_uploads(storage, flow.namespace, flow.id, execution_id, uploads or [])
        execution = create_execution(ctx.store, flow, {**inputs, **paths}, trigger=trigger,
                                     labels=labels, revision=revision,
                                     execution_id=execution_id)
    except BaseException:
        if uploads:
            storage.delete_prefix(execution_prefix(flow.namespace, flow.id, execution_id))
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


def resume_with_files(ctx: ApiContext, execution_id: str, inputs: Mapping[str, Any],
                      uploads: list[Upload]) -> Execution:
    """Resume a paused execution (scheduler.control.resume_execution) with its
    Pause's `onResume` inputs, the uploaded files (FILE inputs) stored first
    under the execution (kestra:///.../executions/<id>/resume/<n>/<input>/<name>)
    and removed again if the resume is refused."""
    if not uploads:
        return resume_execution(ctx.store, ctx.celery_app, execution_id, inputs,
                                settings=ctx.settings)
    execution = ctx.store.get_execution(execution_id)
    folder = f"resume/{new_id()}"
    storage = storage_for(ctx.settings.storage_root)
    prefix = execution_prefix(execution.namespace, execution.flow_id, execution_id)
    try:
        paths = save_uploads(storage, execution.namespace, execution.flow_id, execution_id,
                             uploads, folder=folder)
        return resume_execution(ctx.store, ctx.celery_app, execution_id,
                                {**inputs, **paths}, settings=ctx.settings)
    except BaseException:
        storage.delete_prefix(f"{prefix}{folder}/")
        raise
