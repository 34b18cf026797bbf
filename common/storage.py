"""Internal storage (Kestra's StorageInterface): the files tasks pass to each
other and FILE inputs, named by `kestra:///<namespace>/<flow>/executions/<id>/...`
URIs as Kestra writes them. One class per backend; a local (or shared) directory now."""

from __future__ import annotations

import os
import re
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import quote, unquote

from harrier.common.errors import StorageError

SCHEME = "kestra://"
# read() in a template returns the whole file as text: bounded, as a template is.
READ_LIMIT = 1024 * 1024
_EXECUTION_ID = re.compile(r"[A-Za-z0-9]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def execution_prefix(namespace: str, flow_id: str, execution_id: str) -> str:
    """The logical folder of one execution's files (Kestra's StorageContext)."""
    return f"/{namespace.replace('.', '/')}/{flow_id}/executions/{execution_id}/"


def task_file_path(namespace: str, flow_id: str, execution_id: str, task_id: str,
                   task_run_id: str, name: str) -> str:
    return (execution_prefix(namespace, flow_id, execution_id)
            + f"tasks/{task_id}/{task_run_id}/{_clean_name(name)}")


def input_file_path(namespace: str, flow_id: str, execution_id: str, input_id: str,
                    name: str, *, folder: str = "inputs") -> str:
    """A FILE input's file; `folder` "resume/<id>" for a Pause's onResume inputs."""
    return execution_prefix(namespace, flow_id, execution_id) + \
        f"{folder}/{input_id}/{_clean_name(name)}"


def to_uri(path: str) -> str:
    """Percent-encoded, as a URI is (a space never splits it in a command)."""
    return SCHEME + quote(path, safe="/")


def is_uri(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SCHEME)


def logical_path(uri: str) -> str:
    """The path a kestra:// URI names; a malformed or traversing one is refused."""
    if not is_uri(uri):
        raise StorageError(f"{uri!r} is not a kestra:// URI")
    path = unquote(uri[len(SCHEME):])
    parts = path.split("/")
    if not path.startswith("/") or "\\" in path or "\0" in path or \
            any(part in ("", ".", "..") for part in parts[1:]) or len(path) > 4096:
        raise StorageError(f"{uri!r}: a storage URI is kestra:///<namespace>/<flow>/"
                           "executions/<id>/..., without '..', '.' or empty segments")
    return path


def belongs_to_execution(uri: str, namespace: str, flow_id: str, execution_id: str) -> bool:
    return logical_path(uri).startswith(execution_prefix(namespace, flow_id, execution_id))


def belongs_to_namespace(uri: str, namespace: str) -> bool:
    """A file of any execution of a flow of exactly `namespace` (not a child one)."""
    rest = logical_path(uri).removeprefix(f"/{namespace.replace('.', '/')}/")
    if rest == logical_path(uri):
        return False
    parts = rest.split("/")
    return len(parts) >= 4 and parts[1] == "executions"


def _clean_name(name: str) -> str:
    """A relative file name (outputFiles keep their sub-folders), no traversal."""
    name = _CONTROL.sub("_", name.replace("\\", "/"))
    parts = [p for p in PurePosixPath(name).parts
             if p not in ("", ".", "..", "/")]
    if not parts:
        raise StorageError(f"{name!r} is not a usable file name")
    return "/".join(parts)


class Storage(ABC):
    """What Harrier needs of a storage backend; an object store would implement
    the same four operations (local_path downloads into `scratch`)."""

    @abstractmethod
    def put(self, path: str, source: BinaryIO) -> str:
        """Store the stream at logical `path`; returns its kestra:// URI."""

    @abstractmethod
    def open(self, uri: str) -> BinaryIO:
        """The file's bytes; StorageError when there is no such file."""

    @abstractmethod
    def size(self, uri: str) -> int: ...

    @abstractmethod
    def local_path(self, uri: str, scratch: Path) -> Path:
        """A local path holding the file (a backend without one copies it into `scratch`)."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Remove every file under a logical folder (an execution's)."""

    def put_file(self, path: str, source: Path) -> str:
        with source.open("rb") as stream:
            return self.put(path, stream)

    def copy_to(self, uri: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.open(uri) as stream, target.open("wb") as out:
            shutil.copyfileobj(stream, out)


class LocalStorage(Storage):
    """A directory: under the work root in embedded mode, a volume every worker
    and the API mount in distributed mode (HARRIER_STORAGE_DIR)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _file(self, path: str) -> Path:
        target = self.root / path.lstrip("/")
        resolved = target.resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            raise StorageError(f"{path!r} is outside the storage")
        return target

    def put(self, path: str, source: BinaryIO) -> str:
        logical_path(to_uri(path))
        target = self._file(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.part")
        with partial.open("wb") as out:
            shutil.copyfileobj(source, out)
        partial.replace(target)  # readers never see half a file
        return to_uri(path)

    def _existing(self, uri: str) -> Path:
        target = self._file(logical_path(uri))
        if not target.is_file():
            raise StorageError(f"{uri}: no such file in the storage")
        return target

    def open(self, uri: str) -> BinaryIO:
        return self._existing(uri).open("rb")

    def size(self, uri: str) -> int:
        return self._existing(uri).stat().st_size

    def local_path(self, uri: str, scratch: Path) -> Path:
        return self._existing(uri)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._file(prefix), ignore_errors=True)

    def execution_folders(self) -> Iterator[tuple[str, str, float]]:
        """(logical prefix, execution id, last change) of every execution folder:
        <namespace...>/<flow>/executions/<id> holding only `tasks` and `inputs`,
        outermost first (a namespace or task may itself be named `executions`)."""
        if not self.root.is_dir():
            return
        found: list[Path] = []
        candidates = sorted(self.root.glob("**/executions/*"), key=lambda p: len(p.parts))
        for folder in candidates:
            if not folder.is_dir() or not _EXECUTION_ID.fullmatch(folder.name) or \
                    any(folder.is_relative_to(outer) for outer in found) or \
                    not {child.name for child in folder.iterdir()} <= {"tasks", "inputs"}:
                continue
            found.append(folder)
            yield "/" + str(folder.relative_to(self.root)) + "/", folder.name, \
                folder.stat().st_mtime


def storage_for(root: Path) -> Storage:
    return LocalStorage(root)


def sweep(storage: Storage, exists: Callable[[str], bool], *, grace: float = 3600.0) -> int:
    """Remove the files of executions the store no longer has (their retention
    TTL expired); a folder younger than `grace` may belong to one being created."""
    if not isinstance(storage, LocalStorage):
        return 0
    removed = 0
    for prefix, execution_id, changed in list(storage.execution_folders()):
        if time.time() - changed > grace and not exists(execution_id):
            storage.delete_prefix(prefix)
            removed += 1
    return removed
