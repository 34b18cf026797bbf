"""Built-in task types; importing this package registers them all."""

from harrier.worker.tasks import (  # noqa: F401
    allow_failure,
    assert_,
    commands,
    dag,
    fail,
    for_each,
    if_,
    labels,
    log,
    loop_until,
    output_values,
    parallel,
    python_script,
    return_,
    sequential,
    sleep,
    spark_cli,
    spark_submit,
    switch,
    working_directory,
)
