// Live pages over Server-Sent Events (no inline script: the CSP allows only these files).
// #run-live: the run page's region, which the stream's `run` events replace whole, until an `end` event.
// [data-live-rows]: a table body whose rows the stream's `run` events replace by id, or add on top when the
// body has data-live-new (the first page of a list); `remove` events take a row away; `ready` (the server
// listens) marks the body data-live-ready.
"use strict";

(function () {
  if (!window.EventSource) return;

  function follow(url, handlers) {
    const source = new EventSource(url);
    Object.keys(handlers).forEach(function (name) {
      source.addEventListener(name, function (event) { handlers[name](event.data, source); });
    });
    window.addEventListener("pagehide", function () { source.close(); });
    return source;
  }

  function rowOf(html) {
    const template = document.createElement("template");
    template.innerHTML = "<table><tbody>" + html + "</tbody></table>";
    return template.content.querySelector("tr");
  }

  // The run page's live region, while its run is not over.
  const region = document.querySelector('#run-live[data-live="yes"][data-run-id]');
  if (region) {
    follow("/runs/" + encodeURIComponent(region.getAttribute("data-run-id")) + "/events", {
      run: function (html) {
        const current = document.getElementById("run-live");
        if (current) window.jobsDashboard.replaceLive(current, html);
      },
      end: function (_, source) { source.close(); },
    });
  }

  document.querySelectorAll("[data-live-rows]").forEach(function (body) {
    const addNew = body.hasAttribute("data-live-new");
    const empty = document.getElementById("runs-empty");
    follow(body.getAttribute("data-live-rows"), {
      ready: function () { body.setAttribute("data-live-ready", ""); },
      run: function (html) {
        const row = rowOf(html);
        if (!row) return;
        const old = document.getElementById(row.id);
        if (old) {
          old.replaceWith(row);
        } else if (addNew) {
          row.classList.add("live-new");
          body.prepend(row);
          if (empty) empty.hidden = true;
        }
      },
      remove: function (id) {
        const old = document.getElementById("run-" + id);
        if (old) old.remove();
      },
    });
  });
})();
