// A virtual log view: any number of lines, never more DOM rows than fit on the
// screen (plus a small margin). Rows are fixed-height, positioned over a spacer
// as tall as all the filtered lines, and refilled on scroll.
// An entry is [id, timestamp, level, taskRunId, taskId, attempt, message].
"use strict";

window.LogView = (function () {
  const LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];
  const OVERSCAN = 8;

  class LogView {
    constructor(viewport, spacer, options) {
      this.viewport = viewport;
      this.spacer = spacer;
      this.entries = [];
      this.shown = [];          // indexes into entries that pass the filters
      this.filters = { taskRunId: "", minLevel: 0, text: "" };
      this.follow = true;
      this.onFollowChange = (options && options.onFollowChange) || function () {};
      this.onShownChange = (options && options.onShownChange) || function () {};
      this.taskNames = (options && options.taskNames) || function (entry) { return entry[4] || "execution"; };
      this.rowHeight = 20;
      this.pool = [];
      this.pending = false;
      this.programmaticScroll = false;
      this.viewport.addEventListener("scroll", () => this.onScroll(), { passive: true });
      window.addEventListener("resize", () => this.schedule());
      this.measure();
    }

    measure() {
      const probe = document.createElement("div");
      probe.className = "log-row";
      probe.textContent = "x";
      this.spacer.append(probe);
      this.rowHeight = probe.getBoundingClientRect().height || 20;
      probe.remove();
    }

    passes(entry) {
      const f = this.filters;
      if (f.taskRunId && entry[3] !== f.taskRunId) return false;
      if (f.minLevel && LEVELS.indexOf(entry[2] === "WARNING" ? "WARN" : entry[2]) < f.minLevel) return false;
      if (f.text && entry[6].toLowerCase().indexOf(f.text) < 0) return false;
      return true;
    }

    setFilters(changes) {
      Object.assign(this.filters, changes);
      this.refilter();
      if (this.follow) this.toBottom();
      this.schedule();
    }

    refilter() {
      const shown = [];
      const entries = this.entries;
      const plain = !this.filters.taskRunId && !this.filters.minLevel && !this.filters.text;
      for (let i = 0; i < entries.length; i++) {
        if (plain || this.passes(entries[i])) shown.push(i);
      }
      this.shown = shown;
      this.spacer.style.height = (shown.length * this.rowHeight) + "px";
      this.onShownChange();
    }

    append(batch) {
      if (!batch.length) return;
      const start = this.entries.length;
      for (const entry of batch) this.entries.push(entry);
      for (let i = start; i < this.entries.length; i++) {
        if (this.passes(this.entries[i])) this.shown.push(i);
      }
      this.spacer.style.height = (this.shown.length * this.rowHeight) + "px";
      this.onShownChange();
      if (this.follow) this.toBottom();
      this.schedule();
    }

    prepend(batch) {
      if (!batch.length) return;
      const before = this.shown.length;
      this.entries = batch.concat(this.entries);
      this.refilter();
      if (this.follow) {
        this.toBottom();
      } else {
        // Keep the lines in view where they are.
        this.programmaticScroll = true;
        this.viewport.scrollTop += (this.shown.length - before) * this.rowHeight;
      }
      this.schedule();
    }

    toBottom() {
      this.programmaticScroll = true;
      this.viewport.scrollTop = this.viewport.scrollHeight;
    }

    setFollow(on) {
      this.follow = on;
      if (on) this.toBottom();
      this.schedule();
    }

    onScroll() {
      if (this.programmaticScroll) {
        this.programmaticScroll = false;
      } else {
        const atBottom = this.viewport.scrollTop + this.viewport.clientHeight >=
          this.viewport.scrollHeight - this.rowHeight;
        if (this.follow !== atBottom) {
          this.follow = atBottom;
          this.onFollowChange(atBottom);
        }
      }
      this.schedule();
    }

    schedule() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.render(); });
    }

    row(slot) {
      let node = this.pool[slot];
      if (!node) {
        node = document.createElement("div");
        node.className = "log-row";
        node.append(document.createElement("span"), document.createElement("span"),
          document.createElement("span"), document.createElement("span"));
        node.children[0].className = "log-time";
        node.children[1].className = "log-level";
        node.children[2].className = "log-task";
        node.children[3].className = "log-msg";
        node._position = -1;
        this.spacer.append(node);
        this.pool[slot] = node;
      }
      return node;
    }

    render() {
      const height = this.viewport.clientHeight || 400;
      const size = Math.ceil(height / this.rowHeight) + 2 * OVERSCAN;
      const first = Math.max(0, Math.floor(this.viewport.scrollTop / this.rowHeight) - OVERSCAN);
      const last = Math.min(this.shown.length, first + size);
      // A ring of rows: position p lives in slot p % size, so scrolling by a few
      // lines rewrites only the rows that came into view.
      const used = new Set();
      for (let position = first; position < last; position++) {
        const slot = position % size;
        used.add(slot);
        const node = this.row(slot);
        const entry = this.entries[this.shown[position]];
        if (node._position !== position || node._entry !== entry) {
          node._position = position;
          node._entry = entry;
          node.style.transform = "translateY(" + (position * this.rowHeight) + "px)";
          node.dataset.level = entry[2];
          node.children[0].textContent = entry[1].slice(11, 23);
          node.children[1].textContent = entry[2];
          node.children[2].textContent = this.taskNames(entry);
          node.children[3].textContent = entry[6];
          node.title = entry[1] + " " + entry[6].slice(0, 500);
        }
        if (node.hidden) node.hidden = false;
      }
      for (let slot = 0; slot < this.pool.length; slot++) {
        const node = this.pool[slot];
        if (node && !used.has(slot) && !node.hidden) {
          node.hidden = true;
          node._position = -1;
          node._entry = null;
        }
      }
    }

    domRows() { return this.pool.filter(node => !node.hidden).length; }
  }

  return { LogView, LEVELS };
})();
