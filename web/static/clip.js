// The clip page's player helpers (issue 19 item 3): a marker's time seeks the player, and "now" puts
// the player's current time in the marker form. Served as a file: the pages' CSP allows no inline code.
(function () {
  "use strict";
  var player = document.getElementById("player");
  function clock(seconds) {
    var tenths = Math.round(seconds * 10);
    var whole = Math.floor(tenths / 10), tenth = tenths % 10;
    var h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
    var text = (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(s).padStart(2, "0");
    return tenth ? text + "." + tenth : text;
  }
  document.querySelectorAll("a.seek").forEach(function (link) {
    link.addEventListener("click", function (event) {
      if (!player) return;
      event.preventDefault();
      player.currentTime = parseFloat(link.dataset.offset);
      player.focus();
    });
  });
  var now = document.getElementById("marker-now");
  if (now && player) {
    now.addEventListener("click", function () {
      document.getElementById(now.dataset.for).value = clock(player.currentTime);
      player.pause();
    });
  }
})();
