"""Built-in task types; importing this package registers them all."""

from harrier.worker.tasks import (  # noqa: F401
    commands,
    fail,
    http_download,
    http_request,
    if_,
    log,
    mail_send,
    parallel,
    python_script,
    return_,
    sequential,
    slack_execution,
    slack_incoming_webhook,
    sleep,
    spark_cli,
    spark_submit,
    switch,
    teams_incoming_webhook,
)
