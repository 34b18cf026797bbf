"""Harrier's settings: one object built from HARRIER_* environment variables
at start-up and passed down; nothing else reads the environment."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from harrier.common.durations import parse_duration
from harrier.common.errors import HarrierError

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
    worker_concurrency: int = 0  # 0: Celery's default (number of CPUs)
    worker_queues: tuple[str, ...] = ("default",)
    # How long Redis waits before redelivering an unacknowledged task. A task
    # running longer than this is delivered a second time (see README).
    visibility_timeout: int = 3600
    execution_retention: timedelta = timedelta(days=7)
    webhook_max_body: int = 1024 * 1024
    default_task_runner: str = "process"
    docker_host: str = DEFAULT_DOCKER_HOST
    log_level: str = "INFO"
    work_root: Path = Path(os.environ.get("TMPDIR", "/tmp")) / "harrier"
    embedded_concurrency: int = 8
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Where users reach Harrier (Kestra's kestra.url): links in notifications.
    url: str = ""

    @property
    def embedded(self) -> bool:
        return not self.broker_url

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
            worker_concurrency=integer("WORKER_CONCURRENCY", 0),
            worker_queues=queues or ("default",),
            visibility_timeout=integer("VISIBILITY_TIMEOUT", 3600),
            execution_retention=retention_td,
            webhook_max_body=integer("WEBHOOK_MAX_BODY", 1024 * 1024),
            default_task_runner=get("DEFAULT_TASK_RUNNER", "process").lower(),
            # DOCKER_HOST as the docker CLI reads it; HARRIER_DOCKER_HOST overrides it.
            docker_host=get("DOCKER_HOST") or env.get("DOCKER_HOST", "").strip()
            or DEFAULT_DOCKER_HOST,
            log_level=get("LOG_LEVEL", "INFO").upper(),
            work_root=Path(get("WORK_DIR") or Path(env.get("TMPDIR", "/tmp")) / "harrier"),
            embedded_concurrency=integer("EMBEDDED_CONCURRENCY", 8),
            secrets=_secrets(env),
            url=get("URL").rstrip("/"),
        )


def _secrets(env: Mapping[str, str]) -> dict[str, str]:
    """Kestra OSS reads secrets from SECRET_<NAME> variables holding base64 values."""
    found = {}
    for name, value in env.items():
        if name.startswith("SECRET_") and len(name) > 7:
            try:
                found[name[7:]] = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise SettingsError(f"{name}: secrets must be base64-encoded, as in Kestra "
                                    f"(e.g. export {name}=$(echo -n 'value' | base64))"
                                    ) from None
    return found
