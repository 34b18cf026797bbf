// The execution page: live header, timeline and logs over the API's SSE
// streams, the selected task run's details (and Spark card), and the actions.
"use strict";
(function () {
  const { el, duration, request, stateClass, when, TERMINAL } = window.Harrier;
  const boot = JSON.parse(document.getElementById("boot").textContent);
  const id = boot.execution.id;
  let execution = boot.execution;
  const clockSkew = Date.now() - Date.parse(boot.now);   // server time = Date.now() - skew
  const now = () => Date.now() - clockSkew;
  let reloading = false;  // the page is being fetched again (the execution paused)

  const $ = (selector) => document.querySelector(selector);
  const message = (text, isError) => {
    const box = $("#action-message");
    box.textContent = text;
    box.classList.toggle("error", !!isError);
  };

  // -- timeline and task selection
  const runsById = () => new Map((execution.taskRunList || []).map(r => [r.id, r]));
  const timeline = new window.Timeline.Timeline($("#timeline"), boot.tree, (runId) => selectRun(runId));

  // -- logs
  const view = new window.LogView.LogView($("#log-view"), $("#log-spacer"), {
    onFollowChange: (on) => { $("#log-follow").checked = on; },
    taskNames: (entry) => entry[4] ? entry[4] : "execution",
    onShownChange: () => status(),
  });
  window.harrierLogView = view;  // for the benchmarks and tests

  function renderHeader() {
    const state = execution.state.current;
    const badge = $("#exec-state");
    badge.textContent = state;
    badge.className = "badge " + stateClass(state);
    badge.setAttribute("aria-label", "State " + state);
    document.body.dataset.state = state;
    const histories = execution.state.histories || [];
    if (histories.length) {
      const start = Date.parse(histories[0].date);
      const end = TERMINAL.has(state) ? Date.parse(histories[histories.length - 1].date) : now();
      $("#exec-duration").textContent = duration((end - start) / 1000);
    }
    $("#kill").hidden = TERMINAL.has(state) || state === "KILLING";
    $("#restart").hidden = !(state === "FAILED" || state === "KILLED");
    // The Resume form is rendered by the server for a paused execution: fetch
    // it when the execution pauses while the page is open; hide it once resumed.
    const resumePanel = $("#resume-panel");
    if (resumePanel) resumePanel.hidden = state !== "PAUSED";
    else if (state === "PAUSED" && !reloading) { reloading = true; location.assign("/ui/executions/" + encodeURIComponent(id)); }
    const error = $("#exec-error");
    error.hidden = !execution.error;
    error.textContent = execution.error || "";
    const outputs = execution.outputs || {};
    $("#exec-outputs").textContent = Object.keys(outputs).length ? JSON.stringify(outputs, null, 2) : "None";
  }

  function renderTaskOptions() {
    const select = $("#log-task");
    const known = new Set(Array.from(select.options).map(o => o.value));
    for (const row of timeline.order) {
      if (!row.run || known.has(row.run.id)) continue;
      const label = "\u00a0".repeat(row.depth * 2) + row.run.taskId + (row.run.value ? " [" + row.run.value + "]" : "");
      select.append(el("option", { value: row.run.id, text: label }));
      known.add(row.run.id);
    }
  }

  function render() {
    renderHeader();
    timeline.update(execution, now());
    renderTaskOptions();
    if (timeline.selected) renderRun(timeline.selected);
  }

  // -- the selected task run
  function selectRun(runId) {
    $("#log-task").value = runId || "";
    view.setFilters({ taskRunId: runId || "" });
    $("#taskrun-panel").hidden = !runId;
    if (runId) renderRun(runId);
  }

  function attemptRow(attempt, index) {
    const histories = attempt.state.histories || [];
    const start = histories.length ? Date.parse(histories[0].date) : null;
    const end = TERMINAL.has(attempt.state.current) && histories.length
      ? Date.parse(histories[histories.length - 1].date) : now();
    return el("tr", {},
      el("td", { text: String(index + 1) }),
      el("td", {}, el("span", { class: "badge small " + stateClass(attempt.state.current), text: attempt.state.current })),
      el("td", { text: histories.length ? when(histories[0].date) : "" }),
      el("td", { text: start ? duration((end - start) / 1000) : "" }),
      el("td", { class: "mono", text: attempt.workerId || "" }),
      el("td", { text: attempt.exitCode === undefined ? "" : String(attempt.exitCode) }),
      el("td", { class: "error-text", text: attempt.error || "" }));
  }

  function renderRun(runId) {
    const run = runsById().get(runId);
    const body = $("#taskrun-body");
    if (!run) { body.replaceChildren(el("p", { class: "muted", text: "This task run is gone (restarted)." })); return; }
    $("#taskrun-title").textContent = "Task run " + run.taskId + (run.value ? " [" + run.value + "]" : "");
    const outputs = Object.assign({}, run.outputs || {});
    delete outputs._checkpoint;
    const table = el("table", { class: "list small" },
      el("caption", { class: "visually-hidden", text: "Attempts" }),
      el("thead", {}, el("tr", {}, ...["#", "State", "Started", "Duration", "Worker", "Exit code", "Error"]
        .map(h => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...(run.attempts || []).map(attemptRow)));
    body.replaceChildren(...[
      el("p", {}, el("span", { class: "badge " + stateClass(run.state.current), text: run.state.current }),
        " ", el("span", { class: "mono muted", text: run.id })),
      run.error ? el("p", { class: "exec-error", text: run.error }) : null,
      (run.attempts || []).length ? el("div", { class: "table-wrap" }, table) : el("p", { class: "muted", text: "No attempts: this task arranges other tasks." }),
      Object.keys(outputs).length ? el("details", { open: true }, el("summary", { text: "Outputs" }),
        el("pre", { class: "mono small", text: JSON.stringify(outputs, null, 2) })) : null].filter(Boolean));
    renderSpark(run);
  }

  // -- Spark card: the driver this task submitted
  function renderSpark(run) {
    const card = $("#spark-card");
    const node = timeline.nodesById.get(run.taskId);
    const checkpoint = (run.outputs || {})._checkpoint || {};
    const submission = run.outputs.submissionId || checkpoint.submissionId;
    if (!(node && node.spark) && !submission) { card.hidden = true; return; }
    const master = checkpoint.master || "";
    const guessed = master ? master.replace(/^spark:\/\//, "http://").replace(/:\d+$/, ":8080") : "";
    // Only web addresses become links (the value comes from the flow and spark-submit's output).
    const candidate = checkpoint.masterWebUrl || guessed;
    const web = /^https?:\/\//i.test(candidate) ? candidate : "";
    const running = !TERMINAL.has(run.state.current);
    const driverState = run.outputs.driverState || (submission ? (running ? "RUNNING (followed)" : run.state.current) : "not submitted yet");
    const tail = view.entries.filter(e => e[3] === run.id && e[6].startsWith("[driver")).slice(-20).map(e => e[6]);
    const facts = el("dl", { class: "kv" },
      ...[["Submission", submission || "—"], ["Driver state", driverState], ["Master", master || "—"],
          ["Submitter", (node && node.spark && node.spark.submitter) || "cli"],
          ["Worker", run.outputs.workerId || "—"]]
        .map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", { class: "mono", text: v }))));
    const links = el("p", {},
      web ? el("a", { href: web, target: "_blank", rel: "noopener noreferrer" }, "Spark master UI") : null);
    const kill = el("button", { type: "button", class: "danger", disabled: !(submission && running) },
      "Kill driver");
    kill.addEventListener("click", async () => {
      if (!confirm("Kill Spark driver " + submission + "?")) return;
      try {
        const answer = await request("DELETE", "/api/v1/executions/" + id + "/taskruns/" + run.id + "/spark-driver");
        message(answer.killed ? "Driver " + submission + " killed." : "The master did not kill " + submission + ": " + (answer.message || ""), !answer.killed);
      } catch (error) { message("Kill driver failed: " + error.message, true); }
    });
    card.replaceChildren(el("h3", { text: "Spark driver" }), facts, links,
      el("h4", { text: "Driver log tail" }),
      el("pre", { class: "mono small driver-tail", text: tail.length ? tail.join("\n") : "No driver output yet." }), kill);
    card.hidden = false;
  }

  // -- live execution updates
  let executionStream = null;
  function followExecution() {
    if (executionStream) executionStream.close();
    executionStream = new EventSource("/api/v1/executions/" + id + "/follow");
    executionStream.onmessage = (event) => {
      execution = JSON.parse(event.data);
      render();
    };
    executionStream.addEventListener("end", () => { executionStream.close(); executionStream = null; render(); });
    executionStream.onerror = () => { /* EventSource reconnects by itself */ };
  }

  // -- logs: the last screen first, live lines over SSE, older lines behind
  let logStream = null;
  let pendingLines = [];
  function flushLines() {
    const batch = pendingLines;
    pendingLines = [];
    view.append(batch);
    status();
    if (timeline.selected) renderSpark(runsById().get(timeline.selected) || { outputs: {}, state: {} });
  }

  function followLogs(afterId) {
    if (logStream) logStream.close();
    const url = "/api/v1/logs/" + id + "/follow" + (afterId ? "?lastEventId=" + encodeURIComponent(afterId) : "");
    logStream = new EventSource(url);
    logStream.onmessage = (event) => {
      const e = JSON.parse(event.data);
      if (!pendingLines.length) requestAnimationFrame(flushLines);
      pendingLines.push([event.lastEventId, e.timestamp, e.level, e.taskRunId, e.taskId, e.attemptNumber, e.message]);
    };
    logStream.addEventListener("end", () => { logStream.close(); logStream = null; status(); });
    status();
  }

  let loading = "";
  function status(extra) {
    if (extra !== undefined) loading = extra;
    const live = logStream ? "live" : "ended";
    const shown = view.shown.length === view.entries.length ? view.entries.length + " lines"
      : view.shown.length + " of " + view.entries.length + " lines";
    $("#log-status").textContent = shown + (loading ? ", " + loading : "") + " · " + live;
  }

  async function loadLogs() {
    const first = await request("GET", "/ui/executions/" + id + "/logs?limit=500");
    view.append(first.entries);
    const newest = first.entries.length ? first.entries[first.entries.length - 1][0] : null;
    followLogs(newest);
    let oldest = first.entries.length ? first.entries[0][0] : null;
    let more = first.more;
    while (more && oldest) {
      status("loading older lines");
      const page = await request("GET", "/ui/executions/" + id + "/logs?limit=20000&before=" + encodeURIComponent(oldest));
      view.prepend(page.entries);
      more = page.more && page.entries.length > 0;
      oldest = page.entries.length ? page.entries[0][0] : null;
    }
    document.body.dataset.logsLoaded = "true";
    status("");
  }

  // -- filters and actions
  $("#log-task").addEventListener("change", (event) => timeline.select(event.target.value || null));
  $("#log-level").addEventListener("change", (event) =>
    view.setFilters({ minLevel: window.LogView.LEVELS.indexOf(event.target.value) }));
  let searchTimer = null;
  $("#log-search").addEventListener("input", (event) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => view.setFilters({ text: event.target.value.trim().toLowerCase() }), 150);
  });
  $("#log-follow").addEventListener("change", (event) => view.setFollow(event.target.checked));
  $("#taskrun-close").addEventListener("click", () => timeline.select(null));

  $("#kill").addEventListener("click", async () => {
    if (!confirm("Kill this execution? Running tasks are stopped.")) return;
    try {
      execution = await request("DELETE", "/api/v1/executions/" + id + "/kill");
      message("Kill requested.");
      render();
    } catch (error) { message("Kill failed: " + error.message, true); }
  });
  $("#restart").addEventListener("click", async () => {
    try {
      execution = await request("POST", "/api/v1/executions/" + id + "/restart");
      message("Restarted from the failed tasks.");
      render();
      followExecution();
      followLogs(view.entries.length ? view.entries[view.entries.length - 1][0] : null);
    } catch (error) { message("Restart failed: " + error.message, true); }
  });

  // Running executions: durations and bars grow with the clock.
  setInterval(() => { if (!TERMINAL.has(execution.state.current)) render(); }, 1000);

  view.setFilters({ minLevel: window.LogView.LEVELS.indexOf("INFO") });
  render();
  if (!TERMINAL.has(execution.state.current)) followExecution();
  loadLogs().catch((error) => { $("#log-status").textContent = "Logs could not be loaded: " + error.message; });
})();
