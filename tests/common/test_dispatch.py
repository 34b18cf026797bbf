"""What Celery's logs and Flower show of Harrier's messages: the arguments a
person needs to find an execution, never a task run's outputs or error."""

from __future__ import annotations

from harrier.common.dispatch import FlowRef, advance_message

SECRET = "hunter2-s3cr3t"


def test_complete_task_shows_outputs_and_error_by_size_but_sends_them_whole() -> None:
    outputs = {"password": SECRET, "rows": 3}
    error = f"login failed with {SECRET}"
    message = advance_message(FlowRef("prod.etl", "ingest", 2), "exec1", "complete_task",
                              task_id="run1", state="FAILED", outputs=outputs, error=error)
    shown = message.options["kwargsrepr"]
    assert SECRET not in shown and SECRET not in message.options["argsrepr"]
    assert "'outputs': <2 keys>" in shown
    assert f"'error': <{len(error)} chars>" in shown
    # What a person needs to find the run is still shown.
    assert "'task_id': 'run1'" in shown and "'state': 'FAILED'" in shown
    assert "'prod.etl'" in shown
    # The worker receives the real values.
    assert message.kwargs["outputs"] == outputs and message.kwargs["error"] == error


def test_messages_without_outputs_show_their_arguments_as_repr() -> None:
    message = advance_message(FlowRef("prod.etl", "ingest", 2), "exec1", "start")
    assert message.options["kwargsrepr"] == repr({"flow": ["prod.etl", "ingest", 2]})
    assert message.options["argsrepr"] == repr(("exec1", "start"))
