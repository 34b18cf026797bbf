"""Harrier: Kestra-compatible YAML flows on Celery, for Spark pipelines.

One import package; its layers import one way:
common <- worker <- scheduler <- cli (enforced by tests/test_layers.py).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("harrier")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
