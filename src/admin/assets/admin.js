// idm-sync admin: the live run page. Polls the run's JSON status (same session cookie) and
// updates the counters; when the run has ended, reloads the page to show its summary.
(function () {
  "use strict";
  var run = document.getElementById("run");
  if (!run) { return; }
  var url = run.getAttribute("data-status-url");
  if (!url || run.getAttribute("data-state") !== "ACTIVE") { return; }
  function set(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = String(text); }
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (s) {
        var src = s.progress && s.progress.source && s.progress.source.existing;
        set("run-state", s.state);
        set("run-stage", s.stageDescription || s.stage || "");
        if (src) { set("run-processed", src.processed + " / " + src.total); }
        set("run-duration", Math.round((s.duration || 0) / 100) / 10 + " s");
        if (s.state !== "ACTIVE") { window.location.reload(); return; }
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 500);
})();
