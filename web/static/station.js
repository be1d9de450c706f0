// The station page and kiosk (issue 19): the bays, re-rendered by the server in the reader's language,
// arrive as server-sent events ("bays") and replace the list without a reload. The EventSource
// reconnects by itself when a stream ends or the network drops.
(function () {
  "use strict";
  var bays = document.getElementById("bays");
  if (!bays || !window.EventSource) {
    return;
  }
  var source = new EventSource(bays.getAttribute("data-events"));
  source.addEventListener("bays", function (event) {
    var template = document.createElement("template");
    template.innerHTML = event.data;
    bays.replaceChildren(template.content);
    bays.setAttribute("data-updated", String(Date.now()));
  });
})();
