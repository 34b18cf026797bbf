"""Files between tasks on real worker processes: two workers that share only
Redis and a storage directory (HARRIER_STORAGE_DIR, a volume in a deployment;
each has its own work directory, as on two hosts). The task that writes a
file runs on one, the task that reads it on the other (one worker group each)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harrier.common.flow import parse_flow
from harrier.common.state import State
from harrier.scheduler.executions import create_execution, start_execution
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.workers import Cluster, make_cluster
from tests.integration.embedded import stored_bytes, task_run

pytestmark = pytest.mark.slow

FLOW = """
id: partitions
namespace: spark.pipeline
tasks:
  - id: extract
    type: io.kestra.plugin.scripts.shell.Commands
    workerGroup: {key: hosta}
    outputFiles: ["part-*.csv"]
    commands:
      - printf 'a,1\\nb,2\\n' > part-0.csv
      - printf 'c,3\\n' > part-1.csv
      - echo "::{\\"outputs\\":{\\"host\\":\\"$(pwd)\\"}}::"
  - id: load
    type: io.kestra.plugin.scripts.shell.Commands
    workerGroup: {key: hostb}
    inputFiles:
      first.csv: "{{ outputs.extract.outputFiles['part-0.csv'] }}"
    commands:
      - cat first.csv {{ outputs.extract.outputFiles['part-1.csv'] }} | wc -l
      - echo "::{\\"outputs\\":{\\"host\\":\\"$(pwd)\\"}}::"
  - id: total
    type: io.kestra.plugin.core.debug.Return
    workerGroup: {key: hostb}
    format: "{{ read(outputs.extract.outputFiles['part-1.csv']) | trim }}"
"""


@pytest.fixture(scope="module")
def two_hosts(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Cluster]:
    redis_server.client().flushall()
    root = tmp_path_factory.mktemp("storage-cluster")
    made = make_cluster(redis_server.url, redis_server.url, root,
                        HARRIER_STORAGE_DIR=str(root / "shared-volume"))
    try:
        for host in ("hosta", "hostb"):
            made.start_worker(host, queues=host, concurrency=1,
                              env={"HARRIER_WORK_DIR": str(root / host)})
        yield made
    finally:
        made.stop_all()


def test_a_file_written_on_one_worker_is_read_on_another(two_hosts: Cluster) -> None:
    from harrier.common.celery_app import app  # lazy: configured by make_cluster

    flow = parse_flow(FLOW, "partitions.yaml")
    execution = create_execution(two_hosts.store, flow, {})
    start_execution(app, flow, execution, store=two_hosts.store)
    done = two_hosts.store.wait_terminal(execution.id, 120)
    assert done.state.current == State.SUCCESS, [(r.task_id, r.error) for r in done.task_runs]
    extract, load = task_run(done, "extract"), task_run(done, "load")
    # Two processes, two work directories: nothing but the storage is shared.
    assert extract.attempts[-1].worker_id != load.attempts[-1].worker_id
    root = two_hosts.workdir
    assert extract.outputs["vars"]["host"].startswith(str(root / "hosta") + "/")
    assert load.outputs["vars"]["host"].startswith(str(root / "hostb") + "/")
    files = extract.outputs["outputFiles"]
    assert stored_bytes(two_hosts.settings, files["part-0.csv"]) == b"a,1\nb,2\n"
    logs = [e.message for e in two_hosts.store.read_logs(execution.id) if e.task_id == "load"]
    assert "3" in logs
    assert task_run(done, "total").outputs["value"] == "c,3"
    # The writer's working directory went with its attempt: the file lives in storage.
    assert not any(p.is_dir() for p in (root / "hosta").glob(f"{execution.id}-*"))
    assert (Path(two_hosts.settings.storage_root) / "spark/pipeline/partitions/executions"
            / execution.id).is_dir()
