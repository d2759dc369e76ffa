// The inbox's own script (no inline scripts: CSP script-src 'self'). Small: submit the
// language choice on change, keep the transcript scrolled to the newest message, and turn a
// rise of the waiting-for-a-person count into a browser notification (asked on a click).
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function onReady(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  function scrollTranscript() {
    var t = document.getElementById("transcript");
    if (t) t.scrollTop = t.scrollHeight;
  }

  // A poll redraws the transcript: stay at the newest message if the agent was there,
  // else keep the place they were reading.
  var transcriptPlace = null;
  document.addEventListener("htmx:beforeSwap", function () {
    var t = document.getElementById("transcript");
    transcriptPlace = t ? { atEnd: t.scrollHeight - t.scrollTop - t.clientHeight < 40, top: t.scrollTop } : null;
  });

  var lastCount = null;
  function watchHandoffs() {
    var badge = document.getElementById("handoff-count");
    if (!badge) return;
    var count = parseInt(badge.textContent, 10) || 0;
    badge.classList.toggle("hot", count > 0);
    if (lastCount !== null && count > lastCount && "Notification" in window &&
        Notification.permission === "granted") {
      var note = new Notification(badge.dataset.notifyTitle || "Wafaa", {
        body: badge.dataset.notifyBody || "",
        tag: "wafaa-handoff",
      });
      note.onclick = function () { window.focus(); window.location.href = badge.dataset.inboxUrl || window.location.href; };
    }
    lastCount = count;
  }

  onReady(function () {
    var language = document.getElementById("language-select");
    if (language) language.addEventListener("change", function () { language.form.submit(); });

    // Filters apply as soon as one is chosen (the search box on Enter).
    var filters = document.getElementById("filter-form");
    if (filters) {
      filters.addEventListener("change", function (event) {
        if (event.target.name !== "q") filters.submit();
      });
    }

    var enable = document.getElementById("notify-enable");
    if (enable && "Notification" in window) {
      if (Notification.permission === "default") enable.hidden = false;
      enable.addEventListener("click", function () {
        Notification.requestPermission().then(function () { enable.hidden = true; });
      });
    }
    scrollTranscript();
    watchHandoffs();
  });

  document.addEventListener("htmx:afterSettle", function () {
    var t = document.getElementById("transcript");
    if (t && transcriptPlace) {
      if (transcriptPlace.atEnd) scrollTranscript(); else t.scrollTop = transcriptPlace.top;
    }
    transcriptPlace = null;
    watchHandoffs();
  });
  document.addEventListener("htmx:oobAfterSwap", watchHandoffs);
})();
