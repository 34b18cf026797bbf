"""Built-in task types; importing this package registers them all."""

from harrier.worker.tasks import (  # noqa: F401
    commands,
    fail,
    http_download,
    http_request,
    if_,
    log,
    parallel,
    python_script,
    return_,
    sequential,
    sleep,
    spark_cli,
    spark_submit,
    switch,
)
