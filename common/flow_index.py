"""Where every task sits in its flow: the block (a list of tasks) that holds
it, its position there and the flowable that owns the block. Built once per
flow revision, so the engine finds a task's successor or owner in O(1)
however large the flow is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harrier.common.task import FlowableTask, Task

if TYPE_CHECKING:
    from harrier.common.flow import Flow

# The blocks of the flow itself (owner None), in the order they may run.
ROOT_BLOCKS = ("tasks", "errors", "finally")


@dataclass(frozen=True)
class Node:
    task: Task
    owner: str | None  # id of the flowable whose block holds the task; None: the flow
    block: str  # "tasks", "then", "cases.<key>", "errors", "finally", ...
    index: int  # position among the enabled tasks of the block
    # Run inside its owner's attempt (a WorkingDirectory's children), never on
    # its own: the engine and restarts leave it to the owner.
    inline: bool = False


class FlowIndex:
    def __init__(self, flow: Flow) -> None:
        self._nodes: dict[str, Node] = {}
        self._blocks: dict[tuple[str | None, str], list[Task]] = {}
        roots = {"tasks": flow.tasks, "errors": flow.errors, "finally": flow.finally_}
        for name, tasks in roots.items():
            self._add_block(None, name, tasks)

    def _add_block(self, owner: str | None, name: str, tasks: list[Task]) -> None:
        # Disabled tasks are left out of the flow entirely, as in Kestra.
        enabled = [task for task in tasks if not task.disabled]
        self._blocks[(owner, name)] = enabled
        for index, task in enumerate(enabled):
            self._nodes[task.id] = Node(task, owner, name, index)
            if isinstance(task, FlowableTask):
                for block, children in task.blocks().items():
                    self._add_block(task.id, block, children)
            else:
                inline = [child for _, child in task.children() if not child.disabled]
                for position, child in enumerate(inline):
                    self._nodes[child.id] = Node(child, task.id, "tasks", position, inline=True)

    def node(self, task_id: str) -> Node:
        try:
            return self._nodes[task_id]
        except KeyError:
            raise KeyError(f"no enabled task {task_id!r} in this flow") from None

    def task(self, task_id: str) -> Task:
        return self.node(task_id).task

    def block(self, owner: str | None, name: str) -> list[Task]:
        return self._blocks.get((owner, name), [])

    def loop_depth(self, task_id: str) -> int:
        """How many loops hold the task (its outputs are kept per value of each)."""
        return sum(1 for task in self.ancestors(task_id)
                   if isinstance(task, FlowableTask) and task.is_loop)

    def ancestors(self, task_id: str) -> list[Task]:
        """The flowables holding the task, outermost first."""
        chain: list[Task] = []
        owner = self.node(task_id).owner
        while owner is not None:
            node = self._nodes[owner]
            chain.append(node.task)
            owner = node.owner
        return chain[::-1]
