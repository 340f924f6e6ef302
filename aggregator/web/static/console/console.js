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
        if (fresh.dataset && fresh.dataset.refresh) { schedule(fresh); }
      })
      .catch(function () { schedule(element); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(schedule);
  });
})();
