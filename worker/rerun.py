"""Running failed tasks again inside the same execution: a restart (all of
the flow), the retry of a flowable (what failed under it) and a flow-level
retry. Each failed task run gets a new attempt, its flowables reopen, and
every block it sits in goes back to where its ended runs say; what succeeded
is kept."""

from __future__ import annotations

from harrier.common.execution import TaskRun
from harrier.common.flow_index import ROOT_BLOCKS, FlowIndex
from harrier.common.state import State, transition
from harrier.common.store import BlockProgress, BlockRef, ExecutionStore
from harrier.common.task import PHASE_BLOCKS, FlowableTask, Task
from harrier.worker.engine import EACH, MAIN, Engine, Scope

# What a rerun runs again: ended badly, or never ended (a kill stopped it).
_REDO = (State.FAILED, State.KILLED, State.RETRYING, State.RUNNING, State.CREATED,
         State.RESTARTED)


def rerun_failed(engine: Engine, under: TaskRun | None) -> bool:
    """Run again what failed in the flow (`under` None: also its errors and
    finally tasks, from nothing) or under one flowable's run. Returns False
    when there was nothing to run again."""
    store, index = engine.store, engine.index
    execution_id = engine.execution.id
    runs = {run.id: run for run in store.task_runs(execution_id)}
    inside = _descendants(runs, under.id) if under is not None else set(runs)
    phase_ids: set[str] = set()
    if under is None:
        phase_ids = {task.id for block in ROOT_BLOCKS[1:]
                     for task in subtree(index, None, block)}
    forget = [run.id for run in runs.values() if run.id in inside and run.task_id in phase_ids]
    candidates = [run for run in runs.values() if run.id in inside
                  and run.task_id not in phase_ids and run.state.current in _REDO
                  and _known(index, run.task_id)]
    redo = [run for run in candidates if not isinstance(index.task(run.task_id), FlowableTask)]
    # A flowable that failed before starting any child (its condition could not
    # be rendered) starts again from scratch.
    restart = [run for run in candidates if isinstance(index.task(run.task_id), FlowableTask)
               and not any(r.parent_task_run_id == run.id for r in runs.values())]
    if not redo and not restart and not forget:
        return False

    reopened: dict[str, TaskRun] = {}
    for run in redo:
        transition(run.state, State.RESTARTED, what=f"task {run.task_id}")
        reopened[run.id] = run
    for run in [*redo, *restart]:
        parent = run.parent_task_run_id
        while parent is not None and parent in runs and parent not in reopened:
            owner = runs[parent]
            if under is not None and owner.id == under.id:
                break  # the retried flowable reopens itself
            if owner.state.current.terminated:
                transition(owner.state, State.RESTARTED, what=f"task {owner.task_id}")
                transition(owner.state, State.RUNNING, what=f"task {owner.task_id}")
            reopened[parent] = owner
            parent = owner.parent_task_run_id
    forget += [run.id for run in restart]
    # A reopened flowable's own errors and finally tasks run again as its new
    # outcome requires: forget their runs and what the flowable had come to.
    flowables = [run for run in reopened.values()
                 if isinstance(index.task(run.task_id), FlowableTask)]
    if under is not None:
        flowables.append(under)
    phase_runs = _phase_runs(index, runs, {run.id for run in flowables})
    forget += sorted(phase_runs)
    for run in flowables:
        for block in (MAIN, *PHASE_BLOCKS):
            store.set_block_progress(BlockRef(execution_id, run.id, block), None)
    store.reset_task_runs(execution_id, forget)
    for run in reopened.values():
        store.save_task_run(run)  # not ended any more: they will end again

    touched = {((run.parent_task_run_id or ""), index.node(run.task_id).owner,
                index.node(run.task_id).block, Scope.of(run).instance)
               for run in [*reopened.values(), *(runs[i] for i in forget)]
               if run.task_id not in phase_ids and run.id not in phase_runs}
    for owner_run_id, owner_id, block, instance in touched:
        _recount(store, execution_id, owner_run_id, index.block(owner_id, block), block,
                 runs, set(forget), instance)
    for owner_run_id in {owner_run_id for owner_run_id, _, _, instance in touched
                         if instance}:
        _recount_iterations(store, execution_id, owner_run_id)
    if under is None:
        for block in ROOT_BLOCKS[1:]:
            store.set_block_progress(BlockRef(execution_id, "", block), None)

    # A reopened flowable that keeps its own bookkeeping (a Dag's counts of
    # what has settled) rebuilds it from its children's runs as they now stand.
    for run in flowables:
        if run.id in reopened or run is under:
            children = {child.task_id: child.state.current for child in runs.values()
                        if child.parent_task_run_id == run.id and child.id not in reopened
                        and child.id not in forget and child.state.current.terminated}
            engine.reopen_flowable(run, children)
    for run in redo:
        engine.send_task(index.task(run.task_id), run.parent_task_run_id or "", Scope.of(run))
    for run in restart:
        engine.start_task(run.task_id, run.parent_task_run_id or "", Scope.of(run))
    if under is None and not redo and not restart:
        engine.finish()  # only errors or finally tasks had failed: run them again
    return True


def has_failed_tasks(engine: Engine) -> bool:
    """Whether a restart would run anything again."""
    return any(run.state.current in _REDO for run in engine.store.task_runs(engine.execution.id))


def subtree(index: FlowIndex, owner: str | None, block: str) -> list[Task]:
    """The tasks of a block and, recursively, of the blocks of its flowables."""
    found: list[Task] = []
    for task in index.block(owner, block):
        found.append(task)
        if isinstance(task, FlowableTask):
            for name in task.blocks():
                found.extend(subtree(index, task.id, name))
    return found


def _known(index: FlowIndex, task_id: str) -> bool:
    """A task the engine runs on its own (not one run inside its owner's attempt)."""
    try:
        return not index.node(task_id).inline
    except KeyError:
        return False


def _descendants(runs: dict[str, TaskRun], root_id: str) -> set[str]:
    children: dict[str, list[str]] = {}
    for run in runs.values():
        if run.parent_task_run_id:
            children.setdefault(run.parent_task_run_id, []).append(run.id)
    found: set[str] = set()
    pending = list(children.get(root_id, []))
    while pending:
        run_id = pending.pop()
        found.add(run_id)
        pending.extend(children.get(run_id, []))
    return found


def _phase_runs(index: FlowIndex, runs: dict[str, TaskRun], owners: set[str]) -> set[str]:
    """The runs of the errors and finally tasks of these flowable runs, and
    everything under them."""
    roots = [run.id for run in runs.values() if run.parent_task_run_id in owners
             and _known(index, run.task_id) and index.node(run.task_id).block in PHASE_BLOCKS]
    found = set(roots)
    for root in roots:
        found |= _descendants(runs, root)
    return found


def _recount_iterations(store: ExecutionStore, execution_id: str, loop_run_id: str) -> None:
    """A loop's count of iterations from its iterations' block runs: the ones
    reopened count as running again (their end will be counted anew)."""
    each = BlockRef(execution_id, loop_run_id, EACH)
    progress = store.block_progress(each)
    if progress is None:
        return
    counts: dict[str, int] = {}
    ended = 0
    reopened: list[str] = []
    for iteration in range(progress.next):
        block = store.block_progress(BlockRef(execution_id, loop_run_id, "tasks",
                                              str(iteration)))
        if block is not None and block.done:
            ended += 1
            counts[block.state.value] = counts.get(block.state.value, 0) + 1
        else:
            reopened.append(f"{loop_run_id}#{iteration}")
    store.reset_task_runs(execution_id, reopened)  # their end markers
    store.set_block_progress(each, BlockProgress(
        total=progress.total, next=progress.next, ended=ended,
        stopped=bool(counts.get(State.FAILED.value) or counts.get(State.KILLED.value)),
        counts=counts))


def _recount(store: ExecutionStore, execution_id: str, owner_run_id: str, tasks: list[Task],
             block: str, runs: dict[str, TaskRun], forgotten: set[str],
             instance: str = "") -> None:
    """The block's progress from its runs: started as far as its furthest run
    (a forgotten one included: it starts again by itself), ended as they say."""
    position = {task.id: i for i, task in enumerate(tasks)}
    mine = [run for run in runs.values() if (run.parent_task_run_id or "") == owner_run_id
            and run.task_id in position and Scope.of(run).instance == instance]
    ended = [run for run in mine if run.state.current.terminated and run.id not in forgotten]
    counts: dict[str, int] = {}
    for run in ended:
        counts[run.state.current.value] = counts.get(run.state.current.value, 0) + 1
    started = max((position[run.task_id] for run in mine), default=-1) + 1
    store.set_block_progress(BlockRef(execution_id, owner_run_id, block, instance),
                             BlockProgress(
        total=len(tasks), next=started, ended=len(ended),
        stopped=any(run.state.current in (State.FAILED, State.KILLED) for run in ended),
        counts=counts))
