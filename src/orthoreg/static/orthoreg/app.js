// orthoreg: small progressive enhancements. No inline script anywhere (Content-Security-Policy).
(function () {
  "use strict";

  // A <select class="autosubmit"> submits its form when changed.
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches && el.matches("select.autosubmit") && el.form) { el.form.submit(); }
  });

  // Show only the fieldsets that apply: grade system, procedure kind.
  function toggle(selector, attr, visible) {
    document.querySelectorAll(selector).forEach(function (fs) {
      var show = visible(fs.getAttribute(attr));
      fs.classList.toggle("hidden", !show);
    });
  }

  function syncGradeSystem() {
    var sys = document.querySelector("select[name=system]");
    if (!sys) { return; }
    toggle("fieldset[data-system]", "data-system", function (value) { return value === sys.value; });
  }

  var BIOLOGIC = ["bmc", "prp"];
  function fieldsetHasValues(fs) {
    return Array.prototype.some.call(fs.querySelectorAll("input, select, textarea"), function (el) {
      if (el.type === "checkbox") { return el.checked; }
      return el.value !== "" && el.value !== "unknown";
    });
  }
  function syncProcedureKind() {
    var kind = document.querySelector("select[name=kind]");
    if (!kind) { return; }
    document.querySelectorAll("fieldset[data-group]").forEach(function (fs) {
      var group = fs.getAttribute("data-group");
      var applies = group === "biologic" ? BIOLOGIC.indexOf(kind.value) >= 0 : kind.value === group;
      // Never hide a section that holds values or errors: the user must see what will be refused.
      var keep = applies || fieldsetHasValues(fs) || fs.querySelector(".has-error");
      fs.classList.toggle("hidden", !keep);
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target.name === "system") { syncGradeSystem(); }
    if (event.target.name === "kind") { syncProcedureKind(); }
  });
  document.addEventListener("DOMContentLoaded", function () {
    syncGradeSystem();
    syncProcedureKind();
  });
})();
