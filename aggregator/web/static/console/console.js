// Live parts of a page: an element with data-refresh="<url>" is replaced by that URL's
// answer every data-refresh-seconds, until the answer no longer asks to be refreshed.
(function () {
  function schedule(element) {
    var seconds = Number(element.dataset.refreshSeconds || 5);
    setTimeout(function () { refresh(element); }, seconds * 1000);
  }
  function refresh(element) {
    fetch(element.dataset.refresh, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var fresh = holder.firstElementChild;
        element.replaceWith(fresh);
        fresh.dispatchEvent(new CustomEvent("console:refreshed", { bubbles: true }));
        if (fresh.dataset && fresh.dataset.refresh) { schedule(fresh); }
      })
      .catch(function () { schedule(element); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(schedule);
  });
})();

// Deadline countdowns: a <time class="countdown" data-seconds-left="N"> says "closes in 2 h 14 min" as the server
// rendered it; this ticks it down from the server's figure (not the browser's clock, which may be off).
(function () {
  function words(seconds) {
    if (seconds <= 0) { return "closed"; }
    var hours = Math.floor(seconds / 3600), minutes = Math.floor((seconds % 3600) / 60);
    if (hours) { return "closes in " + hours + " h " + minutes + " min"; }
    if (minutes) { return "closes in " + minutes + " min"; }
    return "closes in under a minute";
  }
  document.addEventListener("DOMContentLoaded", function () {
    var loaded = Date.now();
    var clocks = document.querySelectorAll("time.countdown[data-seconds-left]");
    if (!clocks.length) { return; }
    function tick() {
      var elapsed = Math.floor((Date.now() - loaded) / 1000);
      clocks.forEach(function (clock) {
        clock.textContent = words(Number(clock.dataset.secondsLeft) - elapsed);
      });
    }
    setInterval(tick, 15000);
  });
})();
