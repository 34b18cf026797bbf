// Keeps a server-rendered fragment fresh: the element's data-live URL answers
// the same fragment; it is fetched again every few seconds while the tab shows.
"use strict";
(function () {
  const box = document.querySelector("[data-live]");
  if (!box) return;
  const url = box.getAttribute("data-live");
  const every = Number(box.getAttribute("data-every") || 3000);
  async function refresh() {
    if (document.hidden || box.contains(document.activeElement)) return;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.ok) box.innerHTML = await response.text();
    } catch (e) { /* the next round tries again */ }
  }
  setInterval(refresh, every);
})();
