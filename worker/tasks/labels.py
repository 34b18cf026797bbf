"""io.kestra.plugin.core.execution.Labels: add or change labels of the running
execution (a map, or Kestra's list of {key, value}); they show on the
execution in the API and the UI and searches by label find it."""

from __future__ import annotations

import json
from typing import Any

from pydantic import field_validator

from harrier.common.errors import TaskFailed
from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext

# Bounds on what a run may add: labels are indexed for search.
MAX_LABELS = 50
MAX_LABEL_TEXT = 512


@register_task("io.kestra.plugin.core.execution.Labels")
class Labels(Task):
    labels: dict[str, Any] | str

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: object) -> object:
        if isinstance(value, list):
            labels = {}
            for item in value:
                if not (isinstance(item, dict) and set(item) == {"key", "value"}):
                    raise ValueError("labels: a list of labels holds {key: ..., value: ...} "
                                     f"mappings; found {item!r}")
                labels[str(item["key"])] = item["value"]
            return labels
        return value

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        rendered = ctx.render(self.labels, "labels")
        if isinstance(rendered, str):  # an expression giving a JSON map
            try:
                rendered = json.loads(rendered)
            except json.JSONDecodeError:
                raise TaskFailed(f"labels must render to a map; got {rendered[:200]!r}") \
                    from None
        if not isinstance(rendered, dict):
            raise TaskFailed(f"labels must be a map; got a {type(rendered).__name__}")
        labels = {str(k): str(v) for k, v in rendered.items()}
        if len(labels) > MAX_LABELS:
            raise TaskFailed(f"at most {MAX_LABELS} labels per task; got {len(labels)}")
        for key, value in labels.items():
            if not key or len(key) > MAX_LABEL_TEXT or len(value) > MAX_LABEL_TEXT:
                raise TaskFailed(f"label {key[:80]!r}: keys must be non-empty and keys and "
                                 f"values at most {MAX_LABEL_TEXT} characters")
        ctx.store.set_execution_labels(ctx.execution.id, labels)
        ctx.log("INFO", "labels set: " + ", ".join(f"{k}={v}" for k, v in labels.items()))
        return {}
