"""What every route needs: settings, the execution store, the Celery app and
the triggers disabled at run time, kept on the FastAPI app and handed to
routes as a dependency."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request

from harrier.common.flow import Flow, parse_flow
from harrier.common.settings import Settings
from harrier.common.store import ExecutionStore
from harrier.scheduler.trigger_state import TriggerStates


@dataclass(frozen=True)
class ApiContext:
    settings: Settings
    store: ExecutionStore
    celery_app: Celery
    triggers: TriggerStates  # triggers disabled at run time

    def flow(self, namespace: str, flow_id: str) -> Flow:
        """The latest revision of a flow; the store is the one source of flows
        (the scheduler pushes HARRIER_FLOWS_DIR flows into it)."""
        return self.flow_revision(namespace, flow_id)[0]

    def flow_revision(self, namespace: str, flow_id: str) -> tuple[Flow, int]:
        """The latest revision of a flow and its number in the store."""
        record = self.store.get_flow(namespace, flow_id)
        return (parsed_flow(record.source, f"{namespace}.{flow_id}@{record.revision}"),
                record.revision)


@lru_cache(maxsize=256)
def parsed_flow(source: str, name: str) -> Flow:
    """Flows are immutable values of their source: a webhook or an execution
    request parses each revision once, not once per request (a third of the
    webhook's work). Keyed by the source itself, so a flow deleted and created
    again under the same revision number is parsed anew."""
    return parse_flow(source, name)


def api_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.harrier
    return context


Ctx = Annotated[ApiContext, Depends(api_context)]
