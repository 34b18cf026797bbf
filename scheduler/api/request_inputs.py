"""Execution inputs from a request body: multipart/form-data fields and file
parts (as Kestra's UI and Python client send them), url-encoded forms, or a
JSON object."""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import FormData, UploadFile

from harrier.scheduler.api.errors import ApiError
from harrier.scheduler.api.launch import Upload

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_form(content_type: str) -> bool:
    return media_type(content_type) in FORM_TYPES


def inputs_from_form(form: FormData) -> tuple[dict[str, Any], list[Upload]]:
    values: dict[str, Any] = {}
    uploads: list[Upload] = []
    for key in dict.fromkeys(form.keys()):
        texts: list[str] = []
        for item in form.getlist(key):
            if isinstance(item, UploadFile):
                uploads.append(Upload(key, item.filename or key, item.file))
            else:
                texts.append(item)
        if texts:
            # A repeated field is a list (ARRAY / MULTISELECT inputs).
            values[key] = texts[0] if len(texts) == 1 else texts
    return values, uploads


def inputs_from_json(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ApiError(400, f"malformed JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the JSON body must be an object of input values, "
                       f"not a {type(data).__name__}")
    return data


def check_body_type(content_type: str, body: bytes) -> None:
    """An empty body needs no type; anything else must be a form or JSON."""
    kind = media_type(content_type)
    if body.strip() and kind and kind != "application/json" and not kind.endswith("+json"):
        raise ApiError(415, f"unsupported Content-Type {kind!r}: send inputs as "
                       f"multipart/form-data, application/x-www-form-urlencoded or "
                       f"application/json")


def parse_labels(pairs: list[str]) -> dict[str, str]:
    """Kestra's `labels=key:value` query parameters."""
    labels: dict[str, str] = {}
    bad = []
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep or not key.strip():
            bad.append(pair)
            continue
        labels[key.strip()] = value
    if bad:
        raise ApiError(400, "labels must be key:value", [
            {"message": f"label {p!r} is not key:value", "field": "query.labels"} for p in bad])
    return labels
