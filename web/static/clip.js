// The clip page's player (issue 19 items 3 and 6): speed 0.25x-4x, frame step, keyboard shortcuts, a
// thumbnail strip to seek by (cut from the 4x4 contact sheet), a marker's time seeks the player, and
// "now" puts the player's current time in the marker form. Served as a file: the pages' CSP allows no
// inline code.
(function () {
  "use strict";
  var player = document.getElementById("player");
  var SPEEDS = [0.25, 0.5, 1, 1.5, 2, 4];
  var GRID = 4; // ingest/transcode/thumbnails.py: GRID = (4, 4), 16 equal slots over the clip

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
  function markNow() {
    document.getElementById(now.dataset.for).value = clock(player.currentTime);
    player.pause();
  }
  if (now && player) now.addEventListener("click", markNow);

  if (!player) return;
  var fps = parseFloat(player.dataset.fps) || 25;
  var speed = document.getElementById("player-speed");
  var time = document.getElementById("player-time");

  function setSpeed(rate) {
    player.playbackRate = rate;
    if (speed) speed.value = String(rate);
  }
  function step(frames) {
    player.pause();
    var target = player.currentTime + frames / fps;
    var end = isFinite(player.duration) ? player.duration : target;
    player.currentTime = Math.min(Math.max(0, target), end);
  }
  if (speed) speed.addEventListener("change", function () { setSpeed(parseFloat(speed.value)); });
  document.getElementById("frame-back").addEventListener("click", function () { step(-1); });
  document.getElementById("frame-forward").addEventListener("click", function () { step(1); });
  player.addEventListener("timeupdate", function () { time.value = clock(player.currentTime); });
  player.addEventListener("seeked", function () { time.value = clock(player.currentTime); });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) return;
    if (target && target.tagName === "BUTTON" && event.key === " ") return; // Space presses a button
    var index = SPEEDS.indexOf(player.playbackRate);
    switch (event.key) {
      case " ": case "k": case "K":
        if (player.paused) { player.play(); } else { player.pause(); }
        break;
      case "j": case "J": player.currentTime = Math.max(0, player.currentTime - 5); break;
      case "l": case "L": player.currentTime = player.currentTime + 5; break;
      case ",": step(-1); break;
      case ".": step(1); break;
      case "[": setSpeed(SPEEDS[Math.max(0, (index < 0 ? 2 : index) - 1)]); break;
      case "]": setSpeed(SPEEDS[Math.min(SPEEDS.length - 1, (index < 0 ? 2 : index) + 1)]); break;
      case "m": case "M":
        if (!now) return;
        markNow();
        document.getElementById("marker-note").focus();
        break;
      default: return;
    }
    event.preventDefault();
  });

  var strip = document.getElementById("thumb-strip");
  if (strip) {
    var duration = parseFloat(strip.dataset.duration);
    var cells = GRID * GRID;
    for (var i = 0; i < cells; i++) {
      var cell = document.createElement("button");
      var at = (duration * i) / cells;
      cell.type = "button";
      cell.className = "thumb-cell";
      cell.dataset.offset = String(at);
      cell.title = clock(at);
      cell.setAttribute("aria-label", clock(at));
      cell.style.backgroundImage = "url('" + strip.dataset.sheet + "')";
      cell.style.backgroundSize = GRID * 100 + "% " + GRID * 100 + "%";
      cell.style.backgroundPosition =
        ((i % GRID) * 100) / (GRID - 1) + "% " + (Math.floor(i / GRID) * 100) / (GRID - 1) + "%";
      cell.addEventListener("click", function (event) {
        player.currentTime = parseFloat(event.currentTarget.dataset.offset);
      });
      strip.appendChild(cell);
    }
    player.addEventListener("timeupdate", function () {
      var current = Math.min(cells - 1, Math.floor((player.currentTime / duration) * cells));
      strip.querySelectorAll(".thumb-cell").forEach(function (c, n) {
        c.classList.toggle("current", n === current);
      });
    });
  }
})();
