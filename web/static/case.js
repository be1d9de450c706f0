// The case player (issue 19 item 2): the clips of every officer on one corrected timeline. One master
// position (seconds from the earliest clip's corrected start) drives every player: a clip shows the
// moment `position - its offset` when that falls within it, and waits (paused, marked idle) otherwise.
// Clips whose recorder clock is unknown are shown apart with their own controls: never guessed in.
(function () {
  "use strict";
  var section = document.getElementById("case-player");
  var seek = document.getElementById("sync-seek");
  if (!section || !seek) return;
  var playButton = document.getElementById("sync-play");
  var timeOut = document.getElementById("sync-time");
  var start = Date.parse(section.dataset.start);
  var length = parseFloat(section.dataset.length) || 0;
  var zone = section.dataset.zone;
  var figures = Array.prototype.slice.call(section.querySelectorAll("figure.synced"));
  var position = 0;
  var playing = false;
  var lastTick = 0;
  var DRIFT_S = 0.25; // a player further than this from the master position is put back on it
  var format = new Intl.DateTimeFormat("sv-SE", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
  });

  function local(seconds) {
    return format.format(new Date(start + seconds * 1000)).replace("T", " ");
  }

  function place(figure, hard) {
    var video = figure.querySelector("video");
    var inClip = position - parseFloat(figure.dataset.offset);
    var duration = parseFloat(figure.dataset.duration);
    var active = inClip >= 0 && inClip <= duration;
    figure.classList.toggle("idle", !active);
    if (!active) {
      if (!video.paused) video.pause();
      video.currentTime = inClip < 0 ? 0 : duration;
      return;
    }
    if (hard || Math.abs(video.currentTime - inClip) > DRIFT_S) video.currentTime = inClip;
    if (playing && video.paused) video.play().catch(function () {});
    if (!playing && !video.paused) video.pause();
  }

  function moveTo(seconds, hard) {
    position = Math.min(Math.max(0, seconds), length);
    seek.value = String(position);
    timeOut.value = local(position);
    figures.forEach(function (figure) { place(figure, hard); });
  }

  function tick(now) {
    if (!playing) return;
    var elapsed = (now - lastTick) / 1000;
    lastTick = now;
    moveTo(position + elapsed, false);
    if (position >= length) { setPlaying(false); return; }
    window.requestAnimationFrame(tick);
  }

  function setPlaying(on) {
    playing = on;
    playButton.textContent = on ? playButton.dataset.pause : playButton.dataset.play;
    section.dataset.playing = on ? "1" : "";
    if (on) {
      lastTick = performance.now();
      window.requestAnimationFrame(tick);
    }
    figures.forEach(function (figure) { place(figure, false); });
  }

  playButton.addEventListener("click", function () { setPlaying(!playing); });
  seek.addEventListener("input", function () { moveTo(parseFloat(seek.value), true); });
  section.querySelectorAll("button.jump").forEach(function (button) {
    button.addEventListener("click", function () {
      setPlaying(false);
      moveTo(parseFloat(button.dataset.at), true);
    });
  });
  moveTo(0, true);
})();
