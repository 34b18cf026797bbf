"""Real `helm lint` through helm-sdkpy's bundled Helm library (no helm binary needed).

helm-sdkpy (PyPI) ships libhelm_sdkpy.so, Helm v4 compiled as a C shared library;
its Python wrapper needs Python 3.12, so we call the library with ctypes instead.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import threading
from dataclasses import dataclass
from pathlib import Path

# Helm's support.Severity values.
SEVERITY_NAMES = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}
ERROR = 3

_lock = threading.Lock()
_library: ctypes.CDLL | None = None


class HelmLibraryMissing(RuntimeError):
    """helm-sdkpy is not installed (pip install --ignore-requires-python helm-sdkpy)."""


@dataclass(frozen=True)
class LintMessage:
    severity: int
    path: str
    detail: str

    def __str__(self) -> str:
        return f"[{SEVERITY_NAMES.get(self.severity, self.severity)}] {self.path}: {self.detail}"


@dataclass(frozen=True)
class LintResult:
    messages: tuple[LintMessage, ...]

    @property
    def errors(self) -> tuple[LintMessage, ...]:
        return tuple(m for m in self.messages if m.severity >= ERROR)

    def report(self) -> str:
        return "\n".join(str(m) for m in self.messages) or "(no messages)"


def library_path() -> Path | None:
    spec = importlib.util.find_spec("helm_sdkpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "_lib" / "linux-amd64" / "libhelm_sdkpy.so"
        if candidate.is_file():
            return candidate
    return None


def _load() -> ctypes.CDLL:
    global _library
    if _library is None:
        path = library_path()
        if path is None:
            raise HelmLibraryMissing(
                "helm-sdkpy's libhelm_sdkpy.so not found; "
                "pip install --ignore-requires-python helm-sdkpy==0.1.32"
            )
        library = ctypes.CDLL(str(path))
        library.helm_sdkpy_last_error.restype = ctypes.c_char_p
        library.helm_sdkpy_version_string.restype = ctypes.c_char_p
        library.helm_sdkpy_config_create.argtypes = [
            ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_ulonglong),
        ]
        library.helm_sdkpy_lint.argtypes = [
            ctypes.c_ulonglong, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p),
        ]
        library.helm_sdkpy_config_destroy.argtypes = [ctypes.c_ulonglong]
        _library = library
    return _library


def version() -> str:
    return (_load().helm_sdkpy_version_string() or b"").decode()


def _detail(err: object) -> str:
    # Go errors without exported fields marshal as {}: the text is lost, the path is not.
    if err in ({}, None, ""):
        return "(helm-sdkpy does not expose this error's text; run `helm lint` for it)"
    return json.dumps(err)[:2000]


def lint(chart_dir: Path) -> LintResult:
    """Lint a chart directory with its own values.yaml (schema included)."""
    library = _load()
    with _lock:
        handle = ctypes.c_ulonglong()
        # No cluster is contacted by lint; an empty kubeconfig is fine.
        if library.helm_sdkpy_config_create(b"default", b"", b"", b"{}", ctypes.byref(handle)):
            raise RuntimeError(f"helm config: {library.helm_sdkpy_last_error()!r}")
        try:
            out = ctypes.c_char_p()
            if library.helm_sdkpy_lint(handle, str(chart_dir).encode(), ctypes.byref(out)):
                raise RuntimeError(f"helm lint: {library.helm_sdkpy_last_error()!r}")
            payload = json.loads(out.value or b"{}")
        finally:
            library.helm_sdkpy_config_destroy(handle)
    messages = tuple(
        LintMessage(int(m.get("Severity", 0)), str(m.get("Path", "")), _detail(m.get("Err")))
        for m in payload.get("Messages") or ()
    )
    return LintResult(messages)
