// The dashboard's behaviour, with no inline script anywhere (the CSP allows only this file):
// the Test tab's JSON check and examples, confirmations of run controls, and swapping live fragments.
"use strict";

(function () {
  // The Test tab: refuse to send a payload that is not JSON, and say why.
  function checkJson(form) {
    const field = form.querySelector("textarea[name=payload]");
    const message = form.querySelector("#payload-error");
    if (!field || !message) return true;
    try {
      if (field.value.trim() !== "") JSON.parse(field.value);
    } catch (error) {
      message.textContent = "Payload is not valid JSON: " + error.message;
      message.hidden = false;
      field.setAttribute("aria-invalid", "true");
      field.focus();
      return false;
    }
    message.textContent = "";
    message.hidden = true;
    field.removeAttribute("aria-invalid");
    return true;
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.hasAttribute("data-json-form") && !checkJson(form)) {
      event.preventDefault();
      return;
    }
    const question = event.submitter && event.submitter.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-example]");
    if (!button) return;
    const field = button.form && button.form.querySelector("textarea[name=payload]");
    if (!field) return;
    try {
      field.value = JSON.stringify(JSON.parse(button.getAttribute("data-example")), null, 2);
    } catch (error) {
      field.value = button.getAttribute("data-example");
    }
  });

  // A live region (the run page's <section id="run-live">) is replaced by fresh HTML of it, keeping which
  // <details> were open: window.jobsDashboard.replaceLive(region, html), for the live updates' script.
  function replaceLive(region, html) {
    const open = new Set(
      Array.from(region.querySelectorAll("details[open][id]")).map(function (d) { return d.id; })
    );
    const template = document.createElement("template");
    template.innerHTML = html;
    const fresh = template.content.firstElementChild;
    if (!fresh) return;
    fresh.querySelectorAll("details[id]").forEach(function (d) {
      if (open.has(d.id)) d.open = true;
    });
    // A fragment rendered once for every subscriber has no CSRF token: its forms take the page's.
    const token = document.querySelector("meta[name=csrf-token]");
    fresh.querySelectorAll("input[name=csrf_token]").forEach(function (input) {
      if (!input.value && token) input.value = token.getAttribute("content");
    });
    region.replaceWith(fresh);
  }

  window.jobsDashboard = { replaceLive: replaceLive };
})();
