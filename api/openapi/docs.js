// Renders /openapi.json as a list of operations; no third-party code.
(function () {
  "use strict";
  function el(tag, text) { var e = document.createElement(tag); if (text) { e.textContent = text; } return e; }
  fetch("/openapi.json").then(function (r) { return r.json(); }).then(function (doc) {
    var root = document.getElementById("ops");
    root.textContent = "";
    Object.keys(doc.paths).sort().forEach(function (path) {
      var item = doc.paths[path];
      Object.keys(item).forEach(function (method) {
        var op = item[method];
        var sec = el("section");
        sec.appendChild(el("h3", method.toUpperCase() + " " + path));
        if (op.summary) { sec.appendChild(el("p", op.summary)); }
        sec.appendChild(el("p", "permission: " + op["x-permission"]));
        var codes = el("p", "responses: " + Object.keys(op.responses).join(", "));
        sec.appendChild(codes);
        root.appendChild(sec);
      });
    });
  }).catch(function (e) { document.getElementById("ops").textContent = "could not load /openapi.json: " + e; });
})();
