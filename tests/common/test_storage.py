"""Internal storage on its own: the URIs Kestra writes, what they may name,
the local backend, and the sweep of expired executions' files."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harrier.common.errors import StorageError
from harrier.common.storage import (
    LocalStorage,
    belongs_to_execution,
    belongs_to_namespace,
    input_file_path,
    logical_path,
    sweep,
    task_file_path,
    to_uri,
)


def test_uris_are_kestras_with_the_namespace_as_folders_and_names_percent_encoded() -> None:
    path = task_file_path("company.sales", "daily", "E1", "extract", "R1", "out/my file.csv")
    assert to_uri(path) == ("kestra:///company/sales/daily/executions/E1/tasks/extract/R1/"
                            "out/my%20file.csv")
    assert logical_path(to_uri(path)) == path
    assert input_file_path("a", "f", "E1", "raw", "../../x.csv").endswith("/inputs/raw/x.csv")


@pytest.mark.parametrize("uri", [
    "kestra:///a/f/executions/E1/../E2/inputs/raw/x.csv",
    "kestra:///a/f/executions/E1/%2e%2e/E2/inputs/raw/x.csv",
    "kestra:///a/f/executions/E1/tasks/t/r/..%2F..%2F..%2FE2%2Fx",
    "kestra:///a/f/executions/E1//x",
    "kestra://a/f/executions/E1/x",
    "kestra:///a/f/executions/E1/x\\..\\y",
    "file:///etc/passwd",
])
def test_traversing_or_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(StorageError):
        logical_path(uri)


@given(st.text(min_size=1, max_size=40))
def test_any_file_name_stays_inside_its_task_folder(name: str) -> None:
    try:
        path = task_file_path("ns", "f", "E1", "t", "R1", name)
    except StorageError:
        return  # nothing usable left of the name
    assert path.startswith("/ns/f/executions/E1/tasks/t/R1/")
    assert belongs_to_execution(to_uri(path), "ns", "f", "E1")


def test_namespace_access_is_that_namespace_exactly() -> None:
    uri = to_uri(task_file_path("data.files", "f", "E1", "t", "R1", "x.csv"))
    assert belongs_to_namespace(uri, "data.files")
    assert not belongs_to_namespace(uri, "data")  # a parent namespace is another one
    child = to_uri(task_file_path("data.files.raw", "f", "E1", "t", "R1", "x.csv"))
    assert not belongs_to_namespace(child, "data.files")
    assert not belongs_to_execution(uri, "data.files", "f", "E2")


def test_local_storage_round_trip_and_delete(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    uri = storage.put(task_file_path("ns", "f", "E1", "t", "R1", "a.csv"), io.BytesIO(b"1,2\n"))
    assert storage.size(uri) == 4
    with storage.open(uri) as stream:
        assert stream.read() == b"1,2\n"
    storage.copy_to(uri, tmp_path / "copy" / "a.csv")
    assert (tmp_path / "copy" / "a.csv").read_bytes() == b"1,2\n"
    storage.delete_prefix("/ns/f/executions/E1/")
    with pytest.raises(StorageError, match="no such file"):
        storage.open(uri)


def test_sweep_removes_only_executions_the_store_lost(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    # A namespace and a task named "executions" must not confuse it.
    for namespace, flow, execution, task in (("a.executions", "f", "gone1", "t"),
                                             ("b", "f", "kept1", "executions"),
                                             ("b", "f", "young1", "t")):
        storage.put(task_file_path(namespace, flow, execution, task, "R1", "x"),
                    io.BytesIO(b"x"))
    old = time.time() - 7200
    for folder in (tmp_path / "a/executions/f/executions/gone1",
                   tmp_path / "b/f/executions/kept1"):
        os.utime(folder, (old, old))
    removed = sweep(storage, lambda execution_id: execution_id == "kept1", grace=3600)
    assert removed == 1
    assert not (tmp_path / "a/executions/f/executions/gone1").exists()
    assert (tmp_path / "b/f/executions/kept1/tasks/executions/R1/x").is_file()
    assert (tmp_path / "b/f/executions/young1").is_dir()  # within the grace period
