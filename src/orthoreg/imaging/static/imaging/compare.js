// Before/after page: give each panel its share of the row so both are at the same mm per screen pixel.
(function () {
  "use strict";
  var panels = document.querySelectorAll(".compare-panel[data-share]");
  panels.forEach(function (panel) {
    var share = parseFloat(panel.dataset.share);
    if (isFinite(share) && share > 0) {
      panel.style.flex = share + " " + share + " 0";
    }
  });
})();
