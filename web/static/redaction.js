// The redaction editor (issue 20 item 4, R15). The specification (docs/redaction.md) is edited here in
// the ORIGINAL's pixels and seconds: the proxy on screen is smaller, so every position taken from the
// mouse is scaled by the original's width over the canvas's displayed width. A canvas over the proxy
// previews, at proxy resolution, what the copy will hide at the current time (boxes interpolated
// between their keyframes as the renderer does). "Save" stores the next version through the JSON API,
// "render" renders it; the page then lists the copy. Served as a file: the CSP allows no inline code.
(function () {
  "use strict";
  var root = document.getElementById("redactor");
  if (!root) return;
  var clipId = root.dataset.clipId;
  var csrf = root.dataset.csrf;
  var fps = parseFloat(root.dataset.fps) || 25;
  var words = JSON.parse(document.getElementById("redact-words").textContent);
  var spec = JSON.parse(document.getElementById("redact-spec").textContent);
  var video = document.getElementById("redact-player");
  var canvas = document.getElementById("redact-overlay");
  var paint = canvas.getContext("2d");
  var seek = document.getElementById("redact-seek");
  var timeOut = document.getElementById("redact-time");
  var status = document.getElementById("redact-status");
  var selected = null; // the id of the drawn box being edited
  var drag = null; // {mode: "draw"|"move"|"resize", x0, y0, box: {x,y,w,h}}
  var HANDLE = 12; // screen pixels of the resize corner
  var MIN_SIZE = 8; // original pixels: the renderer's smallest area

  function say(key, values) {
    var text = words[key] || key;
    Object.keys(values || {}).forEach(function (name) { text = text.replace("{" + name + "}", values[name]); });
    return text;
  }
  function round2(v) { return Math.round(v * 100) / 100; }
  function now() { return round2(video.currentTime || 0); }
  function clock(seconds) {
    var whole = Math.floor(seconds), tenth = Math.floor((seconds - whole) * 10);
    return Math.floor(whole / 60) + ":" + String(whole % 60).padStart(2, "0") + "." + tenth;
  }
  function scale() { return spec.width / (canvas.clientWidth || spec.width); }

  // --- geometry, as the renderer reads the specification ------------------------------------------
  function lerp(a, b, share) { return a + (b - a) * share; }
  function interpolate(frames, t) {
    if (!frames.length || t < frames[0].t - 1e-6 || t > frames[frames.length - 1].t + 1e-6) return null;
    for (var i = 0; i < frames.length - 1; i++) {
      var a = frames[i], b = frames[i + 1];
      if (t <= b.t) {
        var share = b.t > a.t ? (t - a.t) / (b.t - a.t) : 0;
        return { x: lerp(a.x, b.x, share), y: lerp(a.y, b.y, share), w: lerp(a.w, b.w, share), h: lerp(a.h, b.h, share) };
      }
    }
    var last = frames[frames.length - 1];
    return { x: last.x, y: last.y, w: last.w, h: last.h };
  }
  function trackBox(track, t) {
    var boxes = track.boxes, before = null, after = null;
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].t <= t) before = boxes[i]; else { after = boxes[i]; break; }
    }
    if (before && after && after.t - before.t <= 0.6) return interpolate([before, after], t);
    if (before && t - before.t <= 1.5 / fps) return before;
    return null;
  }
  function inFrame(box) {
    var w = Math.max(MIN_SIZE, Math.min(Math.round(box.w), spec.width));
    var h = Math.max(MIN_SIZE, Math.min(Math.round(box.h), spec.height));
    var x = Math.min(Math.max(0, Math.round(box.x)), spec.width - w);
    var y = Math.min(Math.max(0, Math.round(box.y)), spec.height - h);
    return { x: x, y: y, w: w, h: h };
  }
  function boxById(id) {
    for (var i = 0; i < spec.boxes.length; i++) if (spec.boxes[i].id === id) return spec.boxes[i];
    return null;
  }
  function nextId(items) {
    return items.reduce(function (most, item) { return Math.max(most, item.id); }, 0) + 1;
  }

  // a keyframe at time t: replaces one at the same frame, else goes in time order. When the box's only
  // later keyframe is the hold to its end at the old place, it follows: the box stays where it was put
  function setKeyframe(box, t, place) {
    var frames = box.keyframes, half = 0.5 / fps;
    var before = interpolate(frames, t);
    var frame = { t: t, x: place.x, y: place.y, w: place.w, h: place.h };
    var index = frames.findIndex(function (k) { return Math.abs(k.t - t) < half; });
    if (index >= 0) frames[index] = frame;
    else {
      frames.push(frame);
      frames.sort(function (a, b) { return a.t - b.t; });
      index = frames.indexOf(frame);
    }
    var later = frames.slice(index + 1);
    if (later.length === 1 && before && Math.abs(later[0].x - before.x) < 1 && Math.abs(later[0].y - before.y) < 1 &&
        Math.abs(later[0].w - before.w) < 1 && Math.abs(later[0].h - before.h) < 1) {
      frames[index + 1] = { t: later[0].t, x: place.x, y: place.y, w: place.w, h: place.h };
    }
  }

  function addBox(place) {
    var t = now(), end = round2(spec.duration_s);
    var box = { id: nextId(spec.boxes), label: "", keyframes: [{ t: t, x: place.x, y: place.y, w: place.w, h: place.h }] };
    if (end - t > 0.5 / fps) box.keyframes.push({ t: end, x: place.x, y: place.y, w: place.w, h: place.h });
    spec.boxes.push(box);
    selected = box.id;
    refresh();
  }

  // --- the preview ---------------------------------------------------------------------------------
  function fitCanvas() {
    var width = Math.round(canvas.clientWidth), height = Math.round(canvas.clientHeight);
    if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  }
  function hide(box, effect, k) {
    var x = box.x / k, y = box.y / k, w = box.w / k, h = box.h / k;
    if (effect === "black" || !video.videoWidth) {
      paint.fillStyle = "#000";
      paint.fillRect(x, y, w, h);
      return;
    }
    var sx = video.videoWidth / spec.width; // the proxy's pixels per original pixel
    paint.save();
    paint.beginPath();
    paint.rect(x, y, w, h);
    paint.clip();
    paint.filter = "blur(" + Math.max(3, Math.round(Math.min(w, h) / 6)) + "px)";
    paint.drawImage(video, box.x * sx, box.y * sx, box.w * sx, box.h * sx, x, y, w, h);
    paint.restore();
  }
  function outline(box, k, colour, dashed) {
    paint.save();
    paint.strokeStyle = colour;
    paint.lineWidth = 2;
    if (dashed) paint.setLineDash([5, 4]);
    paint.strokeRect(box.x / k + 1, box.y / k + 1, box.w / k - 2, box.h / k - 2);
    paint.restore();
  }
  function draw() {
    fitCanvas();
    var k = scale(), t = video.currentTime || 0;
    paint.clearRect(0, 0, canvas.width, canvas.height);
    spec.frames.forEach(function (r) {
      if (t >= r.start_s && t <= r.end_s) hide({ x: 0, y: 0, w: spec.width, h: spec.height }, r.effect, k);
    });
    spec.tracks.forEach(function (track) {
      var box = trackBox(track, t);
      if (!box) return;
      if (track.accepted) hide(box, spec.box_effect, k);
      outline(box, k, track.accepted ? "#ffb000" : "#8a96a3", true);
    });
    spec.boxes.forEach(function (b) {
      var box = interpolate(b.keyframes, t);
      if (!box) return;
      hide(box, spec.box_effect, k);
      outline(box, k, b.id === selected ? "#d95f02" : "#ffffff", false);
    });
    if (drag && drag.mode === "draw" && drag.box) outline(drag.box, k, "#d95f02", true);
    timeOut.value = clock(t);
    if (document.activeElement !== seek) seek.value = String(t);
  }

  // --- drawing with the mouse ----------------------------------------------------------------------
  function point(event) {
    var rect = canvas.getBoundingClientRect(), k = scale();
    return { x: (event.clientX - rect.left) * k, y: (event.clientY - rect.top) * k };
  }
  canvas.addEventListener("pointerdown", function (event) {
    event.preventDefault();
    video.pause();
    var p = point(event), k = scale();
    var current = selected !== null ? boxById(selected) : null;
    var place = current ? interpolate(current.keyframes, now()) : null;
    if (place && p.x >= place.x && p.y >= place.y && p.x <= place.x + place.w && p.y <= place.y + place.h) {
      var corner = p.x >= place.x + place.w - HANDLE * k && p.y >= place.y + place.h - HANDLE * k;
      drag = { mode: corner ? "resize" : "move", x0: p.x, y0: p.y, start: place, box: place };
    } else {
      drag = { mode: "draw", x0: p.x, y0: p.y, box: null };
    }
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", function (event) {
    if (!drag) return;
    var p = point(event), dx = p.x - drag.x0, dy = p.y - drag.y0;
    if (drag.mode === "draw") {
      drag.box = { x: Math.min(p.x, drag.x0), y: Math.min(p.y, drag.y0), w: Math.abs(dx), h: Math.abs(dy) };
    } else if (drag.mode === "move") {
      drag.box = inFrame({ x: drag.start.x + dx, y: drag.start.y + dy, w: drag.start.w, h: drag.start.h });
      setKeyframe(boxById(selected), now(), drag.box);
    } else {
      drag.box = inFrame({ x: drag.start.x, y: drag.start.y, w: drag.start.w + dx, h: drag.start.h + dy });
      setKeyframe(boxById(selected), now(), drag.box);
    }
    draw();
  });
  function endDrag() {
    if (!drag) return;
    var done = drag;
    drag = null;
    if (done.mode === "draw") {
      if (done.box && done.box.w >= MIN_SIZE && done.box.h >= MIN_SIZE) addBox(inFrame(done.box));
      else { selected = null; refresh(); }
    } else {
      refresh();
    }
  }
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);

  document.getElementById("redact-add-box").addEventListener("click", function () {
    addBox(inFrame({ x: spec.width * 3 / 8, y: spec.height * 3 / 8, w: spec.width / 4, h: spec.height / 4 }));
  });

  // --- the lists under the player: drawn boxes, face tracks on a timeline, ranges -----------------
  function button(text, action) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "small";
    b.textContent = text;
    b.addEventListener("click", action);
    return b;
  }
  function span(text) {
    var s = document.createElement("span");
    s.textContent = text;
    return s;
  }
  function bar(from, to, rejected) {
    var outer = document.createElement("div");
    outer.className = "redact-bar" + (rejected ? " rejected" : "");
    var inner = document.createElement("span");
    var length = spec.duration_s || 1;
    inner.style.left = (100 * from / length) + "%";
    inner.style.width = (100 * Math.max(0, to - from) / length) + "%";
    outer.appendChild(inner);
    outer.addEventListener("click", function () { video.currentTime = from; });
    return outer;
  }
  function empty(list) {
    var li = document.createElement("li");
    li.className = "note";
    li.textContent = say("none");
    list.appendChild(li);
  }
  function spanText(from, to) { return say("span", { start: round2(from), end: round2(to) }); }

  function listBoxes() {
    var list = document.getElementById("redact-boxes");
    list.textContent = "";
    if (!spec.boxes.length) empty(list);
    spec.boxes.forEach(function (b) {
      var li = document.createElement("li");
      var first = b.keyframes[0].t, last = b.keyframes[b.keyframes.length - 1].t;
      li.dataset.boxId = String(b.id);
      if (b.id === selected) li.className = "selected";
      li.appendChild(span(say("box") + " " + b.id + " · " + spanText(first, last) + " · " + b.keyframes.length + " ⬩"));
      li.appendChild(button(b.id === selected ? say("selected") : say("select"), function () {
        selected = b.id;
        if (!interpolate(b.keyframes, now())) video.currentTime = first;
        refresh();
      }));
      li.appendChild(button(say("end_here"), function () {
        var t = now(), place = interpolate(b.keyframes, t) || b.keyframes[b.keyframes.length - 1];
        if (t <= first) return;
        b.keyframes = b.keyframes.filter(function (k) { return k.t < t - 0.5 / fps; });
        b.keyframes.push({ t: t, x: place.x, y: place.y, w: place.w, h: place.h });
        refresh();
      }));
      li.appendChild(button(say("remove"), function () {
        spec.boxes = spec.boxes.filter(function (other) { return other !== b; });
        if (selected === b.id) selected = null;
        refresh();
      }));
      li.appendChild(bar(first, last, false));
      list.appendChild(li);
    });
  }

  function listTracks() {
    var list = document.getElementById("redact-tracks");
    list.textContent = "";
    if (!spec.tracks.length) empty(list);
    spec.tracks.forEach(function (track) {
      var li = document.createElement("li");
      var first = track.boxes[0].t, last = track.boxes[track.boxes.length - 1].t;
      li.dataset.trackId = String(track.id);
      li.appendChild(span(say("track") + " " + track.id + " · " + spanText(first, last)));
      var label = document.createElement("label");
      var tick = document.createElement("input");
      tick.type = "checkbox";
      tick.checked = track.accepted;
      tick.className = "track-accept";
      tick.addEventListener("change", function () { track.accepted = tick.checked; refresh(); });
      label.appendChild(tick);
      label.appendChild(document.createTextNode(say("hide")));
      li.appendChild(label);
      li.appendChild(button(say("extend"), function () {
        // the face stays where it was last (or first) seen, up to the current time
        var t = now();
        if (t > last + 0.5 / fps) {
          var end = track.boxes[track.boxes.length - 1];
          for (var at = round2(end.t + 0.25); at < t; at = round2(at + 0.25)) track.boxes.push({ t: at, x: end.x, y: end.y, w: end.w, h: end.h });
          track.boxes.push({ t: t, x: end.x, y: end.y, w: end.w, h: end.h });
        } else if (t < first - 0.5 / fps) {
          var start = track.boxes[0], added = [];
          for (var back = t; back < first - 0.01; back = round2(back + 0.25)) added.push({ t: back, x: start.x, y: start.y, w: start.w, h: start.h });
          track.boxes = added.concat(track.boxes);
        }
        refresh();
      }));
      li.appendChild(bar(first, last, !track.accepted));
      list.appendChild(li);
    });
  }

  var rangeKind = document.getElementById("range-kind");
  var rangeEffect = document.getElementById("range-effect");
  function effectsFor(kind) { return kind === "audio" ? ["mute", "bleep"] : ["blur", "black"]; }
  function fillEffects() {
    rangeEffect.textContent = "";
    effectsFor(rangeKind.value).forEach(function (effect) {
      var option = document.createElement("option");
      option.value = effect;
      option.textContent = say(effect);
      rangeEffect.appendChild(option);
    });
  }
  rangeKind.addEventListener("change", fillEffects);
  fillEffects();
  document.getElementById("range-start-now").addEventListener("click", function () {
    document.getElementById("range-start").value = String(now());
  });
  document.getElementById("range-end-now").addEventListener("click", function () {
    document.getElementById("range-end").value = String(now());
  });
  document.getElementById("range-add").addEventListener("click", function () {
    var start = parseFloat(document.getElementById("range-start").value);
    var end = parseFloat(document.getElementById("range-end").value);
    if (!(end > start) || start < 0) { status.textContent = say("failed", { message: spanText(start, end) }); return; }
    spec[rangeKind.value].push({ start_s: start, end_s: Math.min(end, spec.duration_s), effect: rangeEffect.value });
    refresh();
  });
  function listRanges() {
    var list = document.getElementById("redact-ranges");
    list.textContent = "";
    var all = spec.frames.map(function (r) { return ["frames", r]; }).concat(spec.audio.map(function (r) { return ["audio", r]; }));
    if (!all.length) empty(list);
    all.forEach(function (pair) {
      var kind = pair[0], r = pair[1], li = document.createElement("li");
      li.appendChild(span(say(kind) + " · " + say(r.effect) + " · " + spanText(r.start_s, r.end_s)));
      li.appendChild(button(say("remove"), function () {
        spec[kind] = spec[kind].filter(function (other) { return other !== r; });
        refresh();
      }));
      li.appendChild(bar(r.start_s, r.end_s, false));
      list.appendChild(li);
    });
  }

  var effect = document.getElementById("redact-box-effect");
  effect.value = spec.box_effect;
  effect.addEventListener("change", function () { spec.box_effect = effect.value; draw(); });

  function refresh() {
    listBoxes();
    listTracks();
    listRanges();
    draw();
  }

  // --- the player's controls ----------------------------------------------------------------------
  var play = document.getElementById("redact-play");
  play.addEventListener("click", function () { if (video.paused) video.play(); else video.pause(); });
  video.addEventListener("play", function () { play.textContent = say("pause"); });
  video.addEventListener("pause", function () { play.textContent = say("play"); });
  function step(frames) {
    video.pause();
    video.currentTime = Math.min(Math.max(0, video.currentTime + frames / fps), spec.duration_s);
  }
  document.getElementById("redact-back").addEventListener("click", function () { step(-1); });
  document.getElementById("redact-forward").addEventListener("click", function () { step(1); });
  seek.addEventListener("input", function () { video.pause(); video.currentTime = parseFloat(seek.value); });
  ["timeupdate", "seeked", "loadeddata"].forEach(function (name) { video.addEventListener(name, draw); });
  window.addEventListener("resize", draw);
  (function tick() { if (!video.paused) draw(); window.requestAnimationFrame(tick); })();

  // --- saving, detecting, rendering through the JSON API -------------------------------------------
  function api(path, body) {
    return fetch("/api/clips/" + clipId + "/redaction" + path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.error || String(response.status));
        return data;
      });
    });
  }
  function busy(on) {
    ["redact-save", "redact-render", "redact-detect"].forEach(function (id) { document.getElementById(id).disabled = on; });
  }
  function save() {
    status.textContent = say("saving");
    return api("", spec).then(function (saved) {
      status.textContent = say(saved.created ? "saved" : "unchanged", { n: saved.version });
      document.getElementById("redact-version").textContent = status.textContent;
      return saved;
    });
  }
  function failed(error) { status.textContent = say("failed", { message: error.message }); busy(false); }
  document.getElementById("redact-save").addEventListener("click", function () {
    busy(true);
    save().then(function () { busy(false); }, failed);
  });
  document.getElementById("redact-detect").addEventListener("click", function () {
    busy(true);
    status.textContent = say("detecting");
    // what is on screen is stored first: detection builds on the newest version
    save().then(function () { return api("/detect"); }).then(function (found) {
      return fetch("/api/clips/" + clipId + "/redaction", { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (state) {
        spec = state.spec;
        status.textContent = say("detected", { n: found.version, tracks: found.tracks });
        busy(false);
        refresh();
      });
    }).catch(failed);
  });
  document.getElementById("redact-render").addEventListener("click", function () {
    busy(true);
    var start = document.getElementById("render-start").value, end = document.getElementById("render-end").value;
    save().then(function (saved) {
      status.textContent = say("rendering");
      var body = { version: saved.version };
      if (start !== "") body.start_s = parseFloat(start);
      if (end !== "") body.end_s = parseFloat(end);
      return api("/render", body);
    }).then(function (done) {
      window.location.assign("/clips/" + clipId + "/redaction?rendered=" + done.render_id + "#redact-copies");
    }).catch(failed);
  });

  refresh();
})();
