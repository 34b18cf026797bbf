"""`harrier api`: serve the HTTP API with uvicorn; over Redis and the broker
when HARRIER_BROKER_URL is set, else embedded (in-process worker and store)."""

from __future__ import annotations

import click
import uvicorn

from harrier.common.celery_app import configure_app
from harrier.common.errors import HarrierError
from harrier.common.memory_store import MemoryStore
from harrier.common.settings import Settings
from harrier.scheduler.api.auth import check_exposure
from harrier.scheduler.embedded_triggers import EmbeddedFlowTriggers
from harrier.scheduler.flow_catalog import FlowCatalog, MemoryOrigins
from harrier.scheduler.ui import create_web_app


@click.command("api")
@click.option("--host", default=None, help="Listen address; default HARRIER_API_HOST (0.0.0.0).")
@click.option("--port", type=int, default=None, help="Port; default HARRIER_API_PORT (8080).")
def api_command(host: str | None, port: int | None) -> None:
    """Serve the Kestra-compatible HTTP API (/api/v1/..., /healthz, /docs).

    With HARRIER_BROKER_URL set, executions go to the broker and state lives in
    the Redis store; workers run elsewhere (`harrier worker`). Without it, an
    embedded worker and an in-memory store run in this process (nothing kept).
    """


    try:
        settings = Settings.from_env()
        host = host or settings.api_host
        port = port or settings.api_port
        check_exposure(settings, host, port)
        if settings.embedded:
            # lazy: each mode imports only what it runs (the worker, or the Redis client)
            from harrier.worker.embedded import EmbeddedRuntime

            click.echo("no HARRIER_BROKER_URL: running embedded (in-memory store, "
                       "in-process worker)", err=True)
            store = MemoryStore()
            with EmbeddedRuntime(settings, store=store) as runtime:
                api = create_web_app(runtime.settings, store, runtime.app)
                # Flow triggers of the flows created through this API, as the
                # scheduler would fire them (no Schedule triggers here: no scheduler).
                catalog = FlowCatalog(None, store, origins=MemoryOrigins(),
                                      store_poll_seconds=0.0)
                with EmbeddedFlowTriggers(catalog, store, runtime.app,
                                          states=api.state.harrier.triggers,
                                          secrets=runtime.settings.secrets, refresh=True):
                    uvicorn.run(api, host=host, port=port,
                                log_level=settings.log_level.lower())
            return
        from harrier.common.redis_store import RedisStore  # lazy: see above

        redis_store = RedisStore.from_settings(settings)
        app = configure_app(settings)
        api = create_web_app(settings, redis_store, app)
    except HarrierError as exc:
        raise click.ClickException(str(exc)) from None
    uvicorn.run(api, host=host, port=port, log_level=settings.log_level.lower())
