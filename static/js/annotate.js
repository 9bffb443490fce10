// Keyboard shortcuts, time-on-task and resending for the comparison page. The page works without this file:
// every control is a plain form button; this only clicks them for you, measures time spent, and sends a
// choice again when the server could not take it.
(function () {
  "use strict";

  const KEYS = {
    "1": "left", ArrowLeft: "left",
    "2": "right", ArrowRight: "right",
    "3": "tie", t: "tie",
    "4": "both_bad", b: "both_bad",
    s: "skip",
    // Campaigns that ask how much better: a side and its strength, on the bottom row from left to right.
    z: "left:clearly", x: "left:slightly",
    c: "right:slightly", v: "right:clearly",
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

  // A choice the server could not take for now is sent again (same pair, same choice, same time on task)
  // until it goes through: while the database is out of reach (503, after the pause its Retry-After asks
  // for) or the server is unreachable or restarting (no answer, or a proxy's 502/504: pauses of 1, 2, 4 ...
  // up to 16 s). The server records a choice sent twice once, so resending one that did arrive is harmless.
  const RESEND_STATUSES = new Set([0, 502, 503, 504]);
  let pending = null;  // the choice being sent: {choice, label, durationMs, attempt}
  let resending = false;

  // Fill in duration_ms just before the judgment form is sent (capture phase: before htmx reads it).
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.id === "rank-form") {
      form.elements.duration_ms.value = String(elapsedMs());
      return;
    }
    if (form.id !== "judge-form") return;
    if (resending) {
      resending = false;
      form.elements.duration_ms.value = String(pending.durationMs);
      return;
    }
    const durationMs = elapsedMs();
    form.elements.duration_ms.value = String(durationMs);
    const button = event.submitter;
    pending = button && button.name === "choice" ? {
      choice: button.value,
      label: button.textContent.trim(),
      durationMs: durationMs,
      attempt: 0,
    } : null;
  }, true);

  function notice(text, kind) {
    const pair = document.getElementById("pair");
    let note = document.getElementById("connection-notice");
    if (!note) {
      note = document.createElement("p");
      note.id = "connection-notice";
      note.setAttribute("role", "status");
      pair.prepend(note);  // inside #pair: the next pair, swapped in, takes it away
    }
    note.className = "msg " + kind;
    note.textContent = text;
  }

  // While a choice waits to be sent again, nothing else can be: no other choice, no undo.
  function lockButtons(locked) {
    document.querySelectorAll("#pair button").forEach(function (button) {
      if (locked && !button.disabled) {
        button.disabled = true;
        button.dataset.lockedForResend = "1";
      } else if (!locked && button.dataset.lockedForResend) {
        button.disabled = false;
        delete button.dataset.lockedForResend;
      }
    });
  }

  function resendLater(xhr) {
    const asked = parseInt(xhr.getResponseHeader("Retry-After"), 10);
    const seconds = asked >= 0 ? asked : Math.min(2 ** pending.attempt, 16);
    const delayMs = 1000 * seconds * (1 + 0.25 * Math.random());  // spread out: pages don't all come back at once
    pending.attempt += 1;
    lockButtons(true);
    notice("Connection lost, retrying: your choice (" + pending.label + ") is kept and will be sent again in "
      + Math.ceil(delayMs / 1000) + " s.", "warning");
    setTimeout(resend, delayMs);
  }

  function resend() {
    lockButtons(false);
    // The same form (nothing is swapped in on an error, and the buttons were locked), the same button.
    const button = document.querySelector('#judge-form button[name="choice"][value="' + pending.choice + '"]');
    notice("Connection lost, retrying: sending your choice (" + pending.label + ") again…", "warning");
    resending = true;
    button.click();
  }

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
    if (event.detail.successful) return;  // (the form is gone by then: the next pair replaced it)
    const status = event.detail.xhr.status;
    if (event.detail.elt.id === "judge-form" && pending) {
      if (RESEND_STATUSES.has(status)) {
        resendLater(event.detail.xhr);  // keys stay ignored until it went through
        return;
      }
      pending = null;
    }
    // An error swaps nothing: say so, and keys work again.
    notice("That did not go through (" + (status === 0 ? "the server could not be reached"
      : "the server answered " + status) + "): try again.", "error");
    busy = false;
  });
  document.addEventListener("DOMContentLoaded", function () { startClock(); ready(); });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target.id === "pair") { pending = null; startClock(); ready(); }
  });

  // The editor starts from the raw text of the response chosen (the page shows it rendered as markdown).
  document.addEventListener("click", function (event) {
    const from = event.target.closest("[data-edit-from]");
    if (!from) return;
    const raw = document.getElementById("raw-" + from.dataset.editFrom);
    const editor = document.querySelector("#edit textarea");
    editor.value = raw.content.textContent;
    editor.focus();
  });

  // Ranking several responses: the numbers pressed, best first. Each press gives that response the next rank;
  // the ones not pressed yet follow in the order shown. Dragging a response moves it; the rank selects (what
  // the form sends, and what works without this script) always show the order.
  let pressed = [];
  function rankItems() { return Array.from(document.querySelectorAll("#ranked-list .rank-item")); }
  function showRanks(order) {
    order.forEach(function (item, index) {
      item.querySelector("select").value = String(index + 1);
      item.querySelector(".rank-badge").textContent = pressed.includes(item) ? "#" + (index + 1) : "";
    });
  }
  function rankFromKeys() {
    const rest = rankItems().filter(function (item) { return !pressed.includes(item); });
    if (rest.length === 1) pressed.push(rest.pop());  // the last one is ranked last
    showRanks(pressed.concat(rest));
  }
  function rankKey(event) {
    const items = rankItems();
    if (event.key === "Enter") {
      event.preventDefault();
      document.getElementById("rank-submit").click();
      return true;
    }
    if (event.key === "Backspace") {
      event.preventDefault();
      if (pressed.length === items.length) pressed.pop();  // the automatic last one goes with it
      pressed.pop();
      rankFromKeys();
      return true;
    }
    const item = items.find(function (candidate) { return candidate.dataset.key === event.key; });
    if (!item) return false;
    event.preventDefault();
    if (!pressed.includes(item)) pressed.push(item);
    rankFromKeys();
    return true;
  }
  let dragged = null;
  document.addEventListener("dragstart", function (event) {
    dragged = event.target.closest && event.target.closest(".rank-item");
  });
  document.addEventListener("dragover", function (event) {
    if (dragged && event.target.closest(".rank-item")) event.preventDefault();
  });
  document.addEventListener("drop", function (event) {
    const target = event.target.closest(".rank-item");
    if (!dragged || !target || target === dragged) return;
    event.preventDefault();
    const items = rankItems();
    const list = document.getElementById("ranked-list");
    list.insertBefore(dragged, items.indexOf(dragged) < items.indexOf(target) ? target.nextSibling : target);
    pressed = rankItems();
    showRanks(pressed);
    dragged = null;
  });
  document.addEventListener("htmx:afterSettle", function () { pressed = []; });

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
    if (document.getElementById("rank-form") && rankKey(event)) return;
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
    } else if (event.key === "e") {
      const editor = document.getElementById("edit");
      if (editor) {
        event.preventDefault();
        editor.open = true;
        editor.querySelector("textarea").focus();
      }
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
