// Search results: "pick all" ticks every clip of the page for a bulk action (issue 19 item 4).
(function () {
  "use strict";
  var all = document.getElementById("pick-all");
  if (!all) return;
  all.addEventListener("change", function () {
    document.querySelectorAll("input.pick").forEach(function (box) { box.checked = all.checked; });
  });
})();
