// corpintel console — progressive enhancement only: every page works without this file.
// It keeps relative times fresh, swaps in live fragments the server renders (Server-Sent
// Events, same templates and escaping as the page), and follows logs.
(function () {
  "use strict";

  function rel(t, now) {
    var d = Math.round((now - t) / 1000), future = d < 0, s;
    if (future) d = -d;
    if (d < 10) return "just now";
    if (d < 60) s = d + " s";
    else if (d < 3600) s = Math.floor(d / 60) + " min";
    else if (d < 172800) s = Math.floor(d / 3600) + " h";
    else s = Math.floor(d / 86400) + " days";
    return future ? "in " + s : s + " ago";
  }

  function refreshTimes(root) {
    var now = Date.now();
    root.querySelectorAll("time[data-rel]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(t)) el.textContent = rel(t, now);
    });
  }
  setInterval(function () { refreshTimes(document); }, 10000);

  // Live fragments: replace the element with the fragment's id, keeping keyboard focus
  // on the element with the same id.
  var live = document.body.getAttribute("data-live");
  if (live && window.EventSource) {
    var es = new EventSource(live);
    es.addEventListener("fragment", function (ev) {
      var f = JSON.parse(ev.data);
      var el = document.getElementById(f.id);
      if (!el) return;
      var focused = document.activeElement && document.activeElement.id;
      var tpl = document.createElement("template");
      tpl.innerHTML = f.html;
      var node = tpl.content.firstElementChild;
      if (!node) return;
      el.replaceWith(node);
      refreshTimes(node);
      if (focused) {
        var again = document.getElementById(focused);
        if (again && again !== document.activeElement) again.focus();
      }
      document.body.setAttribute("data-live-at", String(Date.now()));
    });
    es.addEventListener("expired", function () {
      es.close();
      location.href = "/admin/login?expired=1";
    });
    es.onopen = function () { document.body.classList.remove("offline"); };
    es.onerror = function () { document.body.classList.add("offline"); };
    window.addEventListener("pagehide", function () { es.close(); });
  }

  // Log follow.
  var log = document.getElementById("log");
  var stream = log && log.getAttribute("data-stream");
  if (stream && window.EventSource) {
    var controls = document.querySelector(".log-controls");
    var btn = document.getElementById("follow");
    var state = document.getElementById("follow-state");
    var les = null;
    controls.hidden = false;
    var atBottom = function () { return log.scrollTop + log.clientHeight >= log.scrollHeight - 8; };
    var add = function (text, cls) {
      var stick = atBottom();
      var span = document.createElement("span");
      span.className = cls ? "line " + cls : "line";
      span.textContent = text + "\n";
      log.appendChild(span);
      while (log.childElementCount > 5000) log.firstElementChild.remove();
      if (stick) log.scrollTop = log.scrollHeight;
    };
    var stop = function (why) {
      if (les) les.close();
      les = null;
      btn.setAttribute("aria-pressed", "false");
      btn.textContent = "Follow";
      state.textContent = why || "";
    };
    var start = function () {
      les = new EventSource(stream);
      btn.setAttribute("aria-pressed", "true");
      btn.textContent = "Stop following";
      state.textContent = "following new lines…";
      les.addEventListener("line", function (ev) {
        var l = JSON.parse(ev.data);
        add(l.t + (l.cut ? " … " + l.cut + " more bytes" : ""));
      });
      les.addEventListener("skipped", function (ev) {
        add("… " + JSON.parse(ev.data).lines + " lines skipped (too many per second to show)", "note");
      });
      les.addEventListener("end", function (ev) {
        var e = JSON.parse(ev.data);
        stop(e.error ? "the log stream ended: " + e.error : "the log stream ended");
      });
      les.addEventListener("expired", function () {
        stop();
        location.href = "/admin/login?expired=1";
      });
    };
    btn.addEventListener("click", function () { if (les) stop(); else start(); });
    window.addEventListener("pagehide", function () { stop(); });
    log.scrollTop = log.scrollHeight;
    start();
  }

  // The invite link is there to be copied.
  var link = document.getElementById("invite-link");
  if (link) link.addEventListener("focus", function () { link.select(); });

  // One click, one action: a confirmation submitted twice would queue a second one.
  document.querySelectorAll("form.stack").forEach(function (form) {
    form.addEventListener("submit", function () {
      var b = form.querySelector("button[type=submit]");
      if (b) setTimeout(function () { b.disabled = true; }, 0);
    });
  });
})();
