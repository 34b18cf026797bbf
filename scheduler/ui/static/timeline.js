// The execution's timeline, Gantt and topology at once: one row per task run,
// nested as the flow nests (groups such as then/else/cases get a label row),
// tasks that have not run yet as pending rows, and one bar per attempt placed
// on the execution's time axis (gaps between attempts are the retry waits).
"use strict";

window.Timeline = (function () {
  const { el, duration, stateClass, TERMINAL } = window.Harrier;
  const MIN_BAR_PX = 10;

  function time(iso) { return iso ? Date.parse(iso) : null; }

  function runSpan(run, nowMs) {
    const histories = run.state.histories || [];
    const start = histories.length ? time(histories[0].date) : null;
    const end = TERMINAL.has(run.state.current) && histories.length
      ? time(histories[histories.length - 1].date) : nowMs;
    return [start, end];
  }

  function attemptSpans(run, nowMs) {
    const spans = [];
    (run.attempts || []).forEach((attempt, index) => {
      const histories = attempt.state.histories || [];
      if (!histories.length) return;
      const start = time(histories[0].date);
      const last = histories[histories.length - 1];
      const end = TERMINAL.has(attempt.state.current) ? time(last.date) : nowMs;
      spans.push({ index, start, end, state: attempt.state.current, attempt });
    });
    return spans;
  }

  class Timeline {
    constructor(container, tree, onSelect) {
      this.container = container;
      this.tree = tree;
      this.onSelect = onSelect;
      this.rows = new Map();      // key -> {node, bars, signature}
      this.order = [];
      this.selected = null;
      this.nodesById = new Map();
      const index = (nodes) => nodes.forEach(node => {
        this.nodesById.set(node.id, node);
        (node.groups || []).forEach(group => index(group.tasks));
      });
      (tree.groups || []).forEach(group => index(group.tasks));
    }

    // The rows in display order: [{key, depth, kind: "run"|"pending"|"group", node, run, label}]
    layout(execution) {
      const runs = execution.taskRunList || [];
      const byTask = new Map();
      for (const run of runs) {
        const list = byTask.get(run.taskId) || [];
        list.push(run);
        byTask.set(run.taskId, list);
      }
      const placed = new Set();
      const rows = [];
      const place = (nodes, parentRunId, depth, parentKey) => {
        for (const node of nodes) {
          const mine = (byTask.get(node.id) || []).filter(
            run => (run.parentTaskRunId || null) === parentRunId && !placed.has(run.id));
          if (!mine.length) {
            const key = parentKey + "/" + node.id;
            rows.push({ key, depth, kind: "pending", node });
            this.children(node, null, depth, key, place, rows, false);
            continue;
          }
          for (const run of mine) {
            placed.add(run.id);
            rows.push({ key: run.id, depth, kind: "run", node, run });
            this.children(node, run.id, depth, run.id, place, rows, true, byTask);
          }
        }
      };
      const top = this.tree.groups || [];
      for (const group of top) {
        if (group.label !== "tasks") {
          rows.push({ key: "group:" + group.label, depth: 0, kind: "group", label: group.label });
        }
        place(group.tasks, null, group.label === "tasks" ? 0 : 1, group.label);
      }
      // Task runs the flow tree does not explain (an engine newer than this page).
      const stray = runs.filter(run => !placed.has(run.id));
      const depthOf = new Map(rows.filter(r => r.run).map(r => [r.run.id, r.depth]));
      for (const run of stray) {
        rows.push({ key: run.id, depth: (depthOf.get(run.parentTaskRunId) ?? -1) + 1, kind: "run",
                    node: this.nodesById.get(run.taskId) || { id: run.taskId, short: "", groups: [] }, run });
      }
      return rows;
    }

    children(node, runId, depth, key, place, rows, ran, byTask) {
      let groups = node.groups || [];
      if (ran && node.layout === "decide") {
        // If/Switch: once decided, show the branch taken, not the others.
        const taken = groups.filter(group => group.tasks.some(
          task => (byTask.get(task.id) || []).some(r => r.parentTaskRunId === runId)));
        if (taken.length) groups = taken;
      }
      const labelled = groups.length > 1 || (groups.length === 1 && groups[0].label !== "tasks");
      for (const group of groups) {
        if (labelled) {
          rows.push({ key: key + ":" + group.label, depth: depth + 1, kind: "group",
                      label: group.label.replace(/^cases\./, "case ") });
        }
        place(group.tasks, runId, depth + (labelled ? 2 : 1), key + ":" + group.label);
      }
    }

    update(execution, nowMs) {
      const rows = this.layout(execution);
      this.container.classList.toggle("many", rows.length > 150);
      const history = execution.state.histories || [];
      const t0 = history.length ? time(history[0].date) : nowMs;
      const ended = TERMINAL.has(execution.state.current) && history.length
        ? time(history[history.length - 1].date) : nowMs;
      this.t0 = t0;
      this.span = Math.max(ended - t0, 1);
      const wanted = new Set(rows.map(r => r.key));
      for (const [key, row] of this.rows) {
        if (!wanted.has(key)) { row.node.remove(); this.rows.delete(key); }
      }
      let previous = null;
      for (const layout of rows) {
        let row = this.rows.get(layout.key);
        const signature = this.signature(layout);
        if (!row) {
          row = { node: this.build(layout), signature: null };
          this.rows.set(layout.key, row);
        }
        if (row.signature !== signature || (layout.run && !TERMINAL.has(layout.run.state.current))) {
          this.fill(row.node, layout, nowMs);
          row.signature = signature;
        } else if (layout.run) {
          this.placeBars(row.node, layout.run, nowMs);
        }
        const expected = previous ? previous.nextSibling : this.container.firstChild;
        if (expected !== row.node) this.container.insertBefore(row.node, expected);
        previous = row.node;
      }
      this.order = rows;
    }

    signature(layout) {
      if (layout.kind !== "run") return layout.kind + layout.key;
      const run = layout.run;
      return [run.state.current, (run.state.histories || []).length, (run.attempts || []).length,
              (run.attempts || []).map(a => a.state.current).join(",")].join("|");
    }

    build(layout) {
      const row = el("div", { class: "tl-row tl-" + layout.kind, role: "listitem" });
      row.dataset.key = layout.key;
      if (layout.kind === "group") {
        row.append(el("div", { class: "tl-group-label", text: layout.label }));
        row.style.setProperty("--depth", layout.depth);
        return row;
      }
      const name = el("button", { type: "button", class: "tl-name" });
      name.addEventListener("click", () => layout.run && this.select(layout.run.id));
      const track = el("div", { class: "tl-track" });
      row.append(name, track);
      row.style.setProperty("--depth", layout.depth);
      return row;
    }

    fill(row, layout, nowMs) {
      if (layout.kind === "group") return;
      const name = row.querySelector(".tl-name");
      const node = layout.node;
      name.replaceChildren();
      const state = layout.run ? layout.run.state.current : "PENDING";
      const value = layout.run && layout.run.value;
      name.append(...[el("span", { class: "tl-task", text: node.id }),
        value ? el("span", { class: "tl-value", text: value }) : null,
        el("span", { class: "tl-type", text: node.short || "" }),
        el("span", { class: "badge small " + stateClass(state), text: state })].filter(Boolean));
      name.disabled = !layout.run;
      name.setAttribute("aria-label", node.id + (layout.run && layout.run.value ? " " + layout.run.value : "") +
        ", " + state.toLowerCase() + (layout.run ? ", select to filter the logs" : ""));
      row.dataset.state = state;
      if (layout.run) {
        row.dataset.run = layout.run.id;
        row.classList.toggle("selected", layout.run.id === this.selected);
        this.placeBars(row, layout.run, nowMs, true);
      }
    }

    placeBars(row, run, nowMs, rebuild) {
      const track = row.querySelector(".tl-track");
      const spans = attemptSpans(run, nowMs);
      if (!spans.length) {
        // A flowable parent (or a run not started yet): one outline bar for the run.
        const [start, end] = runSpan(run, nowMs);
        if (start !== null) spans.push({ index: -1, start, end, state: run.state.current, outline: true });
      }
      if (rebuild || track.children.length !== spans.length) {
        track.replaceChildren(...spans.map(span => {
          const label = (span.index < 0 ? run.taskId : run.taskId + " attempt " + (span.index + 1)) +
            ": " + span.state + ", " + duration((span.end - span.start) / 1000);
          const bar = el("button", { type: "button", class: "tl-bar " + stateClass(span.state) +
            (span.outline ? " outline" : ""), "aria-label": label, title: label });
          bar.addEventListener("click", () => this.select(run.id));
          return bar;
        }));
      }
      spans.forEach((span, i) => {
        const bar = track.children[i];
        const left = ((span.start - this.t0) / this.span) * 100;
        const width = ((span.end - span.start) / this.span) * 100;
        bar.style.left = Math.max(0, Math.min(left, 100)) + "%";
        bar.style.width = Math.max(width, 0) + "%";
      });
    }

    select(runId) {
      this.selected = runId;
      for (const [, row] of this.rows) {
        row.node.classList.toggle("selected", row.node.dataset.run === runId && runId !== null);
      }
      this.onSelect(runId);
    }
  }

  return { Timeline, MIN_BAR_PX };
})();
