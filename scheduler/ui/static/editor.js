// The flow editor: a plain textarea (keyboard and screen-reader friendly) with
// line numbers, validated as you type by the API (POST /api/v1/flows/validate,
// the same file:line:column messages as `harrier validate`), saved with
// PUT /api/v1/flows/{namespace}/{id} (a new revision).
"use strict";
(function () {
  const { el, request } = window.Harrier;
  const box = document.querySelector(".editor");
  if (!box) return;
  const source = document.getElementById("flow-source");
  const gutter = document.getElementById("gutter");
  const problems = document.getElementById("problems");
  const status = document.getElementById("editor-status");
  const save = document.getElementById("save");
  const revert = document.getElementById("revert");
  const namespace = box.dataset.namespace;
  const flowId = box.dataset.flow;
  const sourceName = box.dataset.sourceName;
  let saved = source.value;
  let timer = null;
  let generation = 0;
  let valid = true;

  function paintGutter(bad) {
    const lines = source.value.split("\n").length;
    const parts = [];
    for (let i = 1; i <= lines; i++) parts.push(bad.has(i) ? "\u25b6" + i : String(i));
    gutter.textContent = parts.join("\n");
    gutter.scrollTop = source.scrollTop;
  }

  function goTo(line, column) {
    const lines = source.value.split("\n");
    let offset = 0;
    for (let i = 0; i < Math.min(line - 1, lines.length); i++) offset += lines[i].length + 1;
    offset += Math.max(0, (column || 1) - 1);
    source.focus();
    source.setSelectionRange(offset, offset);
    const lineHeight = parseFloat(getComputedStyle(source).lineHeight) || 18;
    source.scrollTop = Math.max(0, (line - 3) * lineHeight);
  }

  function show(list) {
    problems.replaceChildren(...list.map(p => {
      const item = el("li", { class: "problem" });
      if (p.line) {
        const link = el("button", { type: "button", class: "link mono" }, p.message);
        link.addEventListener("click", () => goTo(p.line, p.column));
        item.append(link);
      } else {
        item.append(el("span", { class: "mono" }, p.message));
      }
      return item;
    }));
    paintGutter(new Set(list.filter(p => p.line).map(p => p.line)));
    source.setAttribute("aria-invalid", list.length ? "true" : "false");
  }

  function dirty() { return source.value !== saved; }

  function updateButtons() {
    save.disabled = !dirty() || !valid;
    revert.disabled = !dirty();
  }

  async function validate() {
    const mine = ++generation;
    status.textContent = "Checking…";
    try {
      const results = await request("POST", "/api/v1/flows/validate?source=" + encodeURIComponent(sourceName),
        source.value, { "Content-Type": "application/x-yaml" });
      if (mine !== generation) return;  // a newer edit is being checked
      const found = [].concat(...(results || []).map(r => r.problems || []));
      valid = found.length === 0 && results.length > 0;
      show(found);
      status.textContent = valid ? (dirty() ? "Valid, not saved" : "Valid") :
        found.length + " problem" + (found.length === 1 ? "" : "s");
    } catch (error) {
      if (mine !== generation) return;
      valid = false;
      show([{ message: error.message }]);
      status.textContent = "Cannot check";
    }
    updateButtons();
  }

  source.addEventListener("input", () => {
    paintGutter(new Set());
    updateButtons();
    clearTimeout(timer);
    timer = setTimeout(validate, 250);
  });
  source.addEventListener("scroll", () => { gutter.scrollTop = source.scrollTop; });
  source.addEventListener("keydown", (event) => {
    // Tab inserts two spaces (YAML has no tabs); Escape then Tab leaves the editor.
    if (event.key === "Tab" && !event.shiftKey && !source.dataset.escaped) {
      event.preventDefault();
      source.setRangeText("  ", source.selectionStart, source.selectionEnd, "end");
      source.dispatchEvent(new Event("input"));
    }
    source.dataset.escaped = event.key === "Escape" ? "1" : "";
    if ((event.ctrlKey || event.metaKey) && event.key === "s") {
      event.preventDefault();
      if (!save.disabled) save.click();
    }
  });

  save.addEventListener("click", async () => {
    save.disabled = true;
    status.textContent = "Saving…";
    try {
      const flow = await request("PUT", "/api/v1/flows/" + encodeURIComponent(namespace) + "/" + encodeURIComponent(flowId),
        source.value, { "Content-Type": "application/x-yaml" });
      saved = source.value;
      status.textContent = "Saved as revision " + flow.revision;
      show([]);
    } catch (error) {
      const details = (error.data && error.data.details) || [];
      show(details.length ? details : [{ message: error.message }]);
      status.textContent = "Not saved";
    }
    updateButtons();
  });
  revert.addEventListener("click", () => {
    source.value = saved;
    source.dispatchEvent(new Event("input"));
  });
  window.addEventListener("beforeunload", (event) => { if (dirty()) event.preventDefault(); });

  paintGutter(new Set());
  validate();
})();
