"""Run a flow the same way in embedded mode and on a real cluster (Redis and
prefork worker processes): a test module takes a `run` fixture returning a
Runner; its *_distributed twin overrides `run` with the cluster's."""

from __future__ import annotations

from typing import Any

from harrier.common.execution import Execution
from harrier.common.flow import parse_flow
from harrier.scheduler.control import kill_execution, restart_execution
from harrier.scheduler.executions import create_execution, start_execution
from tests.integration.embedded import run_flow_text, stored_bytes, wait_for


class Runner:
    """Runs a flow to its end in one mode and reads back what happened."""

    def __init__(self, mode: str, runtime: Any = None, cluster: Any = None) -> None:
        self.mode = mode
        self._runtime = runtime
        self._cluster = cluster
        self.store = runtime.store if runtime is not None else cluster.store
        self.settings = runtime.settings if runtime is not None else cluster.settings

    def stored(self, uri: str) -> bytes:
        """The bytes of a file in internal storage (an outputFiles value)."""
        return stored_bytes(self.settings, uri)

    def start(self, text: str) -> Execution:
        flow = parse_flow(text, "test.yaml")
        execution = create_execution(self.store, flow, {})
        if self._runtime is not None:
            start_execution(self._runtime.app, flow, execution, store=self.store)
        else:
            start_execution(self.app, flow, execution, store=self.store)
        return execution

    @property
    def app(self) -> Any:
        if self._runtime is not None:
            return self._runtime.app
        from harrier.common.celery_app import app  # configured by the cluster fixture

        return app

    def wait(self, execution_id: str, timeout: float = 90) -> Execution:
        done = self.store.wait_terminal(execution_id, timeout)
        assert done.state.current.terminated, f"execution still {done.state.current}"
        return done

    def restart(self, execution_id: str, timeout: float = 90) -> Execution:
        restart_execution(self.store, self.app, execution_id)
        return wait_for(lambda: (e := self.store.get_execution(execution_id)).state.current
                        .terminated and e, timeout=timeout)

    def kill(self, execution_id: str) -> None:
        kill_execution(self.store, execution_id, app=self.app)

    def __call__(self, text: str, timeout: float = 90) -> Execution:
        if self._runtime is not None:
            return run_flow_text(self._runtime, text, timeout=timeout)
        done = self.store.wait_terminal(self.start(text).id, timeout)
        assert done.state.current.terminated, f"execution still {done.state.current}"
        return done


def flow_tests(module: Any) -> dict[str, Any]:
    """The tests of `module` that take `run`: a *_distributed module runs them again."""
    return {name: test for name, test in vars(module).items()
            if name.startswith("test_") and "run" in test.__code__.co_varnames[
                :test.__code__.co_argcount]}
