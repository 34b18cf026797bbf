"""A stored flow revision in Kestra's JSON shape: the YAML's own fields plus
revision, updated and the source as written."""

from __future__ import annotations

from typing import Any

from harrier.common.errors import FlowValidationError
from harrier.common.state import iso
from harrier.common.store import FlowRecord
from harrier.common.yaml_source import load_yaml


def flow_json(record: FlowRecord) -> dict[str, Any]:
    try:
        data = load_yaml(record.source, f"{record.namespace}.{record.flow_id}").data
    except FlowValidationError:
        data = None  # stored before validation got stricter: still show the source
    fields = dict(data) if isinstance(data, dict) else {}
    labels = fields.get("labels")
    if isinstance(labels, dict):
        fields["labels"] = [{"key": str(k), "value": str(v)} for k, v in labels.items()]
    return {
        **fields,
        "id": record.flow_id,
        "namespace": record.namespace,
        "revision": record.revision,
        "updated": iso(record.updated),
        "disabled": bool(fields.get("disabled", False)),
        "deleted": False,
        "source": record.source,
    }
