// Keeps the video admin's processing badges current while jobs run: every
// few seconds, each unfinished badge is replaced by the server's rendering.
(function () {
  "use strict";
  var PERIOD_MS = 3000;
  var UNFINISHED = "[data-video-status-url][data-video-status='processing'],"
    + "[data-video-status-url][data-video-status='queued']";

  function refreshBadge(badge) {
    var holder = badge.closest("[data-video-status-holder]");
    return fetch(badge.dataset.videoStatusUrl, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        if (status && holder) { holder.innerHTML = status.html; }
      })
      .catch(function () { /* try again next round */ });
  }

  function refreshAll() {
    var badges = document.querySelectorAll(UNFINISHED);
    if (!badges.length) { return; }
    Promise.all(Array.prototype.map.call(badges, refreshBadge)).then(function () {
      window.setTimeout(refreshAll, PERIOD_MS);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    window.setTimeout(refreshAll, PERIOD_MS);
  });
})();
