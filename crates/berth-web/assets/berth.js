// berth: one small script. Every page works without it; it only adds copy buttons,
// auto-submit of selects and checkboxes, and filtering of the rows on screen.
"use strict";
document.addEventListener("click", function (ev) {
  var button = ev.target.closest("button.copy[data-copy]");
  if (!button || !navigator.clipboard) return;
  navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
    button.textContent = "Copied";
    button.setAttribute("data-copied", "true");
  });
});
document.addEventListener("change", function (ev) {
  var t = ev.target;
  if (t.id === "platform-select" || t.id === "fixable" || t.hasAttribute("data-autosubmit")) {
    if (t.form) t.form.submit();
  }
});
document.addEventListener("input", function (ev) {
  if (ev.target.id !== "package-q") return;
  var needle = ev.target.value.toLowerCase();
  document.querySelectorAll("#packages tr.package").forEach(function (row) {
    row.hidden = needle !== "" && row.getAttribute("data-name").toLowerCase().indexOf(needle) < 0;
  });
});
