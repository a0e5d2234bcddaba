// Live pages (README, "Using it"): every element marked `data-live` is fetched again every few seconds and
// swapped in place, so an operator never reloads to see what the system did. One bar per page
// (templates/_live.html) says when the page was last updated and pauses or resumes the refresh.
//
// - The period comes from the bar's `data-interval` (seconds, INVENTIV_LIVE_REFRESH_S).
// - A region fetches `data-live-url`, or the page's own address (so filters pushed into the URL apply);
//   the view answers the partial named by the region's id (HX-Target). `data-live-swap` defaults to outerHTML.
// - Nothing is fetched while the tab is hidden or the bar is paused; a tab shown again refreshes at once.
// - A region holding an element marked `data-live-hold` (older rows loaded by scrolling) is left alone,
//   so a refresh never takes away what the operator scrolled to.
(function () {
  "use strict";
  var MAX_WAIT_MS = 30000;  // a request not answered by then no longer holds the next refresh back
  var bar = null;
  var paused = false;
  var lastUpdate = Date.now();
  var failed = false;
  var busyUntil = 0;

  function running() { return !paused && !document.hidden; }

  function regions() { return Array.prototype.slice.call(document.querySelectorAll("[data-live]")); }

  function refresh() {
    if (!running() || Date.now() < busyUntil || !window.htmx) return;
    var due = regions().filter(function (region) { return region.id && !region.querySelector("[data-live-hold]"); });
    if (!due.length) return;
    busyUntil = Date.now() + MAX_WAIT_MS;
    var requests = due.map(function (region) {
      var url = region.dataset.liveUrl || (window.location.pathname + window.location.search);
      return window.htmx.ajax("GET", url, {source: region, target: region, swap: region.dataset.liveSwap || "outerHTML"});
    });
    Promise.allSettled(requests).then(function (results) {
      busyUntil = 0;
      if (results.some(function (result) { return result.status === "rejected"; })) failed = true;
      show();
    });
  }

  function ageText(seconds) {
    if (seconds < 90) return seconds + " s";
    if (seconds < 90 * 60) return Math.round(seconds / 60) + " min";
    return Math.round(seconds / 3600) + " h";
  }

  function show() {
    if (!bar) return;
    var age = bar.querySelector("[data-live-age]");
    var seconds = Math.max(0, Math.round((Date.now() - lastUpdate) / 1000));
    var text = "updated " + ageText(seconds) + " ago";
    if (paused) text += " · paused";
    else if (regions().some(function (region) { return region.querySelector("[data-live-hold]"); })) {
      text += " · older rows shown: reload or filter to refresh";
    } else if (document.hidden) text += " · waiting for the tab to be shown";
    else if (failed) text += " · the last refresh failed, retrying";
    age.textContent = text;
    bar.dataset.state = paused ? "paused" : (failed ? "failed" : "live");
  }

  // An answer aimed at a live region (its refresh, or a filter form's): a good one counts as an update; an
  // error answer is not swapped (htmx's default).
  document.addEventListener("htmx:beforeSwap", function (event) {
    var region = event.detail.target;
    if (!region || !region.hasAttribute || !region.hasAttribute("data-live")) return;
    var status = event.detail.xhr.status;
    failed = !(status >= 200 && status < 300);
    if (!failed) lastUpdate = Date.now();
  });

  function toggle(button) {
    paused = !paused;
    button.textContent = paused ? "Resume" : "Pause";
    button.setAttribute("aria-pressed", paused ? "true" : "false");
    show();
    if (!paused) refresh();
  }

  function init() {
    bar = document.querySelector("[data-live-bar]");
    if (!bar) return;
    var seconds = parseInt(bar.dataset.interval, 10);
    var period = (seconds > 0 ? seconds : 5) * 1000;
    var button = bar.querySelector("[data-live-toggle]");
    if (button) button.addEventListener("click", function () { toggle(button); });
    document.addEventListener("visibilitychange", function () { show(); if (!document.hidden) refresh(); });
    window.setInterval(refresh, period);
    window.setInterval(show, 1000);
    show();
  }

  // For tests and the curious: whether the page is refreshing itself now, and when it last did.
  window.inventivLive = {running: running, lastUpdate: function () { return lastUpdate; }};
  document.addEventListener("DOMContentLoaded", init);
})();
