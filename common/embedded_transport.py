"""The broker of embedded mode: kombu's in-memory transport, woken when a
message arrives instead of polling, so a chain step starts in microseconds
and a stopping worker leaves its loop at once instead of after Celery's 2 s
drain timeout."""

from __future__ import annotations

import threading
from queue import Empty
from typing import Any

from kombu.transport import memory

# Producers and consumers share the in-memory queues (they are process-wide),
# so they share one condition: every put bumps the generation and wakes waiters.
_arrived = threading.Condition()
_generation = 0
_MAX_WAIT = 0.02


def _announce() -> None:
    global _generation
    with _arrived:
        _generation += 1
        _arrived.notify_all()


def wake_consumers() -> None:
    """Make every waiting consumer return from drain_events (a stopping worker
    then sees its shutdown flag)."""
    _announce()


class Channel(memory.Channel):
    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        super()._put(queue, message, **kwargs)
        _announce()

    def _put_fanout(self, exchange: str, message: Any, routing_key: str | None = None,
                    **kwargs: Any) -> None:
        super()._put_fanout(exchange, message, routing_key, **kwargs)
        _announce()

    # An ack frees a prefetch slot: a consumer that stopped taking messages
    # because every pool thread was busy may take the next one now, instead of
    # after its capped wait (that wait was most of a task's cost in a wide
    # Parallel, see bench/scale.py).
    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple=multiple)
        _announce()

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue=requeue)
        _announce()


class Transport(memory.Transport):
    Channel = Channel
    cycle: Any  # kombu types it as None until the first channel exists

    # kombu's own base classes disagree on this signature; this is the virtual one.
    def drain_events(self, connection: Any, timeout: Any = None) -> None:  # type: ignore[override]
        """Deliver one message; wait for one to arrive (or for a wake-up) at most
        `timeout` seconds, then raise socket.timeout as kombu expects."""
        with _arrived:
            seen = _generation
        try:
            self.cycle.get(self._deliver, timeout=timeout)
            return
        except Empty:
            pass
        with _arrived:
            if _generation == seen:
                # Capped: the worker loop also has work between messages (QoS
                # updates for countdown tasks the timer released), done only
                # when drain_events returns.
                _arrived.wait(min(timeout, _MAX_WAIT) if timeout is not None else _MAX_WAIT)
        try:
            self.cycle.get(self._deliver, timeout=timeout)
        except Empty:
            raise TimeoutError() from None
