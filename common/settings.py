"""Harrier's settings: one object built from HARRIER_* environment variables
at start-up and passed down; nothing else reads the environment."""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from harrier.common.durations import parse_duration
from harrier.common.errors import HarrierError

log = logging.getLogger(__name__)

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


class SettingsError(HarrierError):
    """An environment variable holds a value Harrier cannot use."""


@dataclass(frozen=True)
class Settings:
    broker_url: str = ""  # empty: embedded mode (in-memory transport, in-process worker)
    store_url: str = ""  # redis://...; empty: in-memory (embedded) or the broker's Redis
    result_backend: str = ""
    flows_dir: Path = Path("flows")
    api_host: str = "0.0.0.0"
    api_port: int = 8080
    api_username: str = ""
    api_password: str = ""
    api_token: str = ""
    # "none": serve the API without credentials on any address (HARRIER_API_AUTH).
    api_auth: str = ""
    worker_concurrency: int = 0  # 0: Celery's default (number of CPUs)
    worker_queues: tuple[str, ...] = ("default",)
    # How long Redis waits before redelivering an unacknowledged task. A task
    # running longer than this is delivered a second time (see README).
    visibility_timeout: int = 3600
    # A running task whose heartbeats (every 2 s) stop this long is taken for
    # lost with its worker, and a scheduler sends it again.
    task_lost_after: int = 15
    # How long workers keep retrying a store command while Redis is down.
    store_patience: int = 120
    # An ended execution read by a scheduler replica but not acknowledged this
    # long: its replica died, another takes it over (Flow triggers).
    flow_trigger_claim_idle: int = 30
    execution_retention: timedelta = timedelta(days=7)
    webhook_max_body: int = 1024 * 1024
    api_max_body: int = 1024 * 1024  # every request body, uploads included
    api_workers: int = 1  # uvicorn processes serving the API (distributed mode)
    default_task_runner: str = "process"
    docker_host: str = DEFAULT_DOCKER_HOST
    log_level: str = "INFO"
    work_root: Path = Path(os.environ.get("TMPDIR", "/tmp")) / "harrier"
    # Internal storage (files between tasks, FILE inputs); None: work_root/storage.
    # Distributed mode: a path every worker and the API share (a volume).
    storage_dir: Path | None = None
    embedded_concurrency: int = 8
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Where users reach Harrier (Kestra's kestra.url): links in notifications.
    url: str = ""

    @property
    def embedded(self) -> bool:
        return not self.broker_url

    @property
    def storage_root(self) -> Path:
        return self.storage_dir or self.work_root / "storage"

    @property
    def effective_store_url(self) -> str:
        if self.store_url:
            return self.store_url
        return self.broker_url if self.broker_url.startswith(("redis://", "rediss://")) else ""

    @property
    def effective_result_backend(self) -> str:
        if self.result_backend:
            return self.result_backend
        if self.embedded:
            return "cache+memory://"
        return self.effective_store_url or "cache+memory://"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str, default: str = "") -> str:
            return env.get(f"HARRIER_{name}", default).strip()

        def integer(name: str, default: int) -> int:
            text = get(name)
            if not text:
                return default
            try:
                return int(text)
            except ValueError:
                raise SettingsError(f"HARRIER_{name}: expected a whole number, got {text!r}"
                                    ) from None

        retention = get("EXECUTION_RETENTION", "P7D")
        try:
            retention_td = parse_duration(retention)
        except ValueError as exc:
            raise SettingsError(f"HARRIER_EXECUTION_RETENTION: {exc}") from None
        api_auth = get("API_AUTH").lower()
        if api_auth not in ("", "none"):
            raise SettingsError(f"HARRIER_API_AUTH: expected 'none' (no authentication) or "
                                f"nothing, got {get('API_AUTH')!r}")
        queues = tuple(q.strip() for q in get("WORKER_QUEUES", "default").split(",") if q.strip())
        return cls(
            broker_url=get("BROKER_URL"),
            store_url=get("STORE_URL"),
            result_backend=get("RESULT_BACKEND"),
            flows_dir=Path(get("FLOWS_DIR", "flows")),
            api_host=get("API_HOST", "0.0.0.0"),
            api_port=integer("API_PORT", 8080),
            api_username=get("API_USERNAME"),
            api_password=get("API_PASSWORD"),
            api_token=get("API_TOKEN"),
            api_auth=api_auth,
            worker_concurrency=integer("WORKER_CONCURRENCY", 0),
            worker_queues=queues or ("default",),
            visibility_timeout=integer("VISIBILITY_TIMEOUT", 3600),
            task_lost_after=_at_least("TASK_LOST_AFTER", integer("TASK_LOST_AFTER", 15), 5),
            store_patience=_at_least("STORE_PATIENCE", integer("STORE_PATIENCE", 120), 0),
            flow_trigger_claim_idle=_at_least(
                "FLOW_TRIGGER_CLAIM_IDLE", integer("FLOW_TRIGGER_CLAIM_IDLE", 30), 1),
            execution_retention=retention_td,
            webhook_max_body=integer("WEBHOOK_MAX_BODY", 1024 * 1024),
            api_max_body=integer("API_MAX_BODY", 1024 * 1024),
            api_workers=max(1, integer("API_WORKERS", 1)),
            default_task_runner=get("DEFAULT_TASK_RUNNER", "process").lower(),
            # DOCKER_HOST as the docker CLI reads it; HARRIER_DOCKER_HOST overrides it.
            docker_host=get("DOCKER_HOST") or env.get("DOCKER_HOST", "").strip()
            or DEFAULT_DOCKER_HOST,
            log_level=get("LOG_LEVEL", "INFO").upper(),
            work_root=Path(get("WORK_DIR") or Path(env.get("TMPDIR", "/tmp")) / "harrier"),
            storage_dir=Path(get("STORAGE_DIR")) if get("STORAGE_DIR") else None,
            embedded_concurrency=integer("EMBEDDED_CONCURRENCY", 8),
            secrets=_secrets(env),
            url=get("URL").rstrip("/"),
        )


def _at_least(name: str, value: int, low: int) -> int:
    if value < low:
        raise SettingsError(f"HARRIER_{name}: expected at least {low} (seconds), got {value}")
    return value


class Secrets(dict[str, str]):
    """Secret values by name, and why the ones that could not be read failed
    (a flow using one of those fails with that message; the others run)."""

    def __init__(self, values: Mapping[str, str] | None = None,
                 undecodable: Mapping[str, str] | None = None) -> None:
        super().__init__(values or {})
        self.undecodable = dict(undecodable or {})


def _secrets(env: Mapping[str, str]) -> Secrets:
    """Kestra OSS reads secrets from SECRET_<NAME> variables holding base64 values
    (line breaks allowed: GNU base64 wraps its output at 76 columns)."""
    found: dict[str, str] = {}
    undecodable: dict[str, str] = {}
    for name, value in env.items():
        if name.startswith("SECRET_") and len(name) > 7:
            try:
                found[name[7:]] = base64.b64decode("".join(value.split()),
                                                   validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                message = (f"{name} cannot be decoded: secrets must be base64-encoded UTF-8, "
                           f"as in Kestra (e.g. export {name}=$(echo -n 'value' | base64))")
                undecodable[name[7:]] = message
                log.error("%s; flows using secret('%s') will fail", message, name[7:])
    return Secrets(found, undecodable)
