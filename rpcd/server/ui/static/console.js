// rpcd console: optional comforts only. Every page reads without this script.
// 1. "Refresh every 15 s" (remembered for this tab). 2. "Probe now" in place, its result
// announced in the page's live region.
"use strict";
(function () {
  var KEY = "rpcd-console-refresh";
  var box = document.getElementById("auto-refresh");
  if (box) {
    box.closest(".refresh").hidden = false;
    box.checked = sessionStorage.getItem(KEY) === "1";
    var timer = null;
    var arm = function () {
      if (timer) { clearTimeout(timer); timer = null; }
      if (box.checked) { timer = setTimeout(function () { location.reload(); }, 15000); }
    };
    box.addEventListener("change", function () {
      sessionStorage.setItem(KEY, box.checked ? "1" : "0");
      arm();
    });
    arm();
  }
  var form = document.querySelector("form[data-probe]");
  var out = document.getElementById("probe-result");
  if (form && out) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = form.querySelector("button");
      button.disabled = true;
      out.textContent = "Probing…";
      fetch(form.action, {
        method: "POST",
        headers: { "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(new FormData(form)).toString(),
        credentials: "same-origin"
      }).then(function (response) {
        return response.json();
      }).then(function (data) {
        var p = document.createElement("p");
        if (data.error && data.ok === undefined) {
          p.textContent = "Probe not run: " + data.error;
        } else {
          var state = data.ok === true ? "✔ OK" : (data.ok === null ? "skipped" : "✘ FAILED");
          var text = "Last probe (" + data.at + "): " + state;
          if (data.latency_ms !== null) { text += " in " + data.latency_ms + " ms"; }
          if (data.error) { text += ": " + data.error; }
          p.textContent = text + ".";
        }
        out.replaceChildren(p);
      }).catch(function () {
        out.textContent = "The probe request failed; reload the page.";
      }).finally(function () {
        button.disabled = false;
      });
    });
  }
})();
