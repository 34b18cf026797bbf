"""A Spark task's driver, as the task run checkpointed it: kill it on the
master without killing the execution (the task then ends as the driver did)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from harrier.common.errors import SparkSubmissionError
from harrier.scheduler.api.auth import require_auth
from harrier.scheduler.api.context import Ctx
from harrier.scheduler.api.errors import ApiError
from harrier.worker.tasks.spark_follow import Submission

router = APIRouter(prefix="/executions", tags=["spark"], dependencies=[Depends(require_auth)])


@router.delete("/{execution_id}/taskruns/{task_run_id}/spark-driver",
               summary="Kill the Spark driver a task run submitted (Harrier)")
def kill_driver(execution_id: str, task_run_id: str, ctx: Ctx) -> dict[str, Any]:
    execution = ctx.store.get_execution(execution_id)
    run = execution.task_run(task_run_id)
    if run is None:
        raise ApiError(404, f"execution {execution_id} has no task run {task_run_id}")
    submission = Submission.from_checkpoint(dict(run.outputs.get("_checkpoint") or {}))
    if submission is None:
        raise ApiError(409, f"task run {run.task_id} has not submitted a Spark driver")
    if run.state.current.terminated:
        raise ApiError(409, f"task run {run.task_id} already ended in {run.state.current}")
    try:
        with submission.client() as client:
            killed = client.kill(submission.submission_id)
    except SparkSubmissionError as exc:
        raise ApiError(502, f"the Spark master {submission.master} did not answer: {exc}"
                       ) from None
    return {"submissionId": submission.submission_id, "master": submission.master,
            "killed": killed}
