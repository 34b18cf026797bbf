"""Embedded mode: Celery's in-memory transport, an in-memory store and a
thread-pool worker inside this process; the same canvas and task bodies as
the distributed mode."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from celery.worker import WorkController
from celery.worker import state as worker_state

from harrier.common.celery_app import configure_app
from harrier.common.embedded_transport import wake_consumers
from harrier.common.memory_store import MemoryStore
from harrier.common.settings import Settings
from harrier.common.store import ExecutionStore
from harrier.worker.runtime import Runtime, install


class _Worker(WorkController):
    def __init__(self, *args: object, **kwargs: object) -> None:
        self.started = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: object) -> None:
        self.started.set()


class EmbeddedRuntime:
    """`with EmbeddedRuntime(settings) as runtime:` — a whole Harrier in-process."""

    def __init__(self, settings: Settings, queues: list[str] | None = None,
                 store: ExecutionStore | None = None) -> None:
        self.queues = queues or ["default"]
        self.settings = settings.with_overrides(broker_url="", store_url="", result_backend="")
        self.app = configure_app(self.settings)
        self.store = store if store is not None else MemoryStore()
        self.runtime = Runtime(self.settings, self.store, self.app)
        self._worker: _Worker | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Runtime:
        install(self.runtime)
        logging.getLogger("celery").setLevel(logging.WARNING)
        self._worker = _Worker(
            app=self.app, concurrency=self.settings.embedded_concurrency, pool="threads",
            hostname=f"embedded-{threading.get_ident()}@harrier", loglevel="WARNING",
            without_heartbeat=True, without_mingle=True, without_gossip=True,
            queues=self.queues, ready_callback=None)
        self._thread = threading.Thread(target=self._worker.start, daemon=True,
                                        name="harrier-embedded-worker")
        self._thread.start()
        self._worker.started.wait(30)
        return self.runtime

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._worker is not None:
            self._worker.stop(in_sighandler=False)
            wake_consumers()  # the consumer loop is waiting for a message: let it see the stop
        if self._thread is not None:
            self._thread.join(10)
        worker_state.should_terminate = None
