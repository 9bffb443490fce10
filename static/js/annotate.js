// Keyboard shortcuts and time-on-task for the comparison page. The page works without this file:
// every control is a plain form button; this only clicks them for you and measures time spent.
(function () {
  "use strict";

  const KEYS = {
    "1": "left", ArrowLeft: "left",
    "2": "right", ArrowRight: "right",
    "3": "tie", t: "tie",
    "4": "both_bad", b: "both_bad",
    s: "skip",
  };

  // Time on task counts only while the page is visible, from the moment a pair is shown.
  let visibleMs = 0;
  let visibleSince = null;
  function startClock() {
    visibleMs = 0;
    visibleSince = document.visibilityState === "visible" ? performance.now() : null;
  }
  function elapsedMs() {
    return Math.round(visibleMs + (visibleSince === null ? 0 : performance.now() - visibleSince));
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      visibleSince = performance.now();
    } else if (visibleSince !== null) {
      visibleMs += performance.now() - visibleSince;
      visibleSince = null;
    }
  });

  // Fill in duration_ms just before the judgment form is sent (capture phase: before htmx reads it).
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.id === "judge-form" && form.elements.duration_ms) {
      form.elements.duration_ms.value = String(elapsedMs());
    }
  }, true);

  // From a request until the next pair has settled, the new buttons are not wired to htmx yet: a key
  // pressed then would post the old-fashioned way (a full page load), and no one can have read the new
  // pair within those milliseconds anyway. Such keys are ignored; #pair gets data-ready once settled.
  let busy = false;
  function ready() {
    busy = false;
    const pair = document.getElementById("pair");
    if (pair) pair.dataset.ready = "1";
  }
  document.addEventListener("htmx:beforeRequest", function () { busy = true; });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (!event.detail.successful) busy = false;  // an error swaps nothing: keys work again
  });
  document.addEventListener("DOMContentLoaded", function () { startClock(); ready(); });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target.id === "pair") { startClock(); ready(); }
  });

  function typing(target) {
    return target.closest("textarea, input, select, [contenteditable=true]") !== null;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (busy) { event.preventDefault(); return; }
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const choice = KEYS[event.key];
    if (choice) {
      const button = document.querySelector('#judge-form button[value="' + choice + '"]');
      if (button && !button.disabled) {
        event.preventDefault();
        button.click();
      }
      return;
    }
    if (event.key === "u") {
      const undo = document.getElementById("undo");
      if (undo && !undo.disabled) { event.preventDefault(); undo.click(); }
    } else if (event.key === "g") {
      const panel = document.getElementById("guidelines");
      if (panel && !panel.hidden) { event.preventDefault(); panel.open = !panel.open; }
    } else if (event.key === "r") {
      const details = document.querySelector("#judge-form details.rationale");
      if (details) {
        event.preventDefault();
        details.open = true;
        details.querySelector("textarea").focus();
      }
    }
  });
})();
