// Progressive enhancement only: every form works without this file.
(function () {
  "use strict";

  function detectZone() {
    var select = document.querySelector("select[data-detect]");
    if (!select || !window.Intl) return;
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    if (!zone) return;
    var known = Array.prototype.some.call(select.options, function (o) { return o.value === zone; });
    if (!known) select.add(new Option(zone, zone));  // the server checks it against IANA names
    select.value = zone;
  }

  function weekdayOnlyWhenWeekly() {
    var field = document.getElementById("weekday-field");
    var radios = document.querySelectorAll("input[name=frequency]");
    if (!field || !radios.length) return;
    function sync() {
      var checked = document.querySelector("input[name=frequency]:checked");
      field.hidden = !(checked && checked.value === "weekly");
    }
    Array.prototype.forEach.call(radios, function (r) { r.addEventListener("change", sync); });
    sync();
  }

  function livePreview() {
    var profile = document.getElementById("profile");
    var region = document.getElementById("preview");
    if (!profile || !region || !window.fetch) return;
    var timer = null, last = null, controller = null;
    function update() {
      var q = profile.value;
      if (q === last) return;
      last = q;
      if (controller) controller.abort();
      controller = window.AbortController ? new AbortController() : null;
      fetch("/preview?q=" + encodeURIComponent(q), {
        signal: controller ? controller.signal : undefined,
        credentials: "same-origin",
        headers: { "Accept": "text/html" }
      }).then(function (r) { return r.text(); })
        .then(function (html) { region.innerHTML = html; })  // server-escaped fragment
        .catch(function () {});
    }
    profile.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(update, 300);
    });
  }

  // A feedback link's page: record the vote at once (the GET alone recorded nothing), then
  // show the server's answer in place; without script, the page's button does the same.
  function autoVote() {
    var form = document.querySelector("form[data-autovote]");
    var section = document.getElementById("feedback");
    if (!form || !section || !window.fetch || !window.DOMParser) return;
    fetch(window.location.pathname, { method: "POST", credentials: "omit", headers: { "Accept": "text/html" } })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("feedback");
        if (fresh) section.parentNode.replaceChild(document.importNode(fresh, true), section);
      })
      .catch(function () {});  // the button is still there
  }

  function start() { detectZone(); weekdayOnlyWhenWeekly(); livePreview(); autoVote(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
