// The fleet map: sites from the page's JSON (?format=json), clustered by Leaflet.markercluster, coloured by state.
// No base layer unless the page names a tile URL (settings.CONSOLE_MAP_TILE_URL): offline, the map is blank.
(function () {
  var COLOURS = { online: "#1a7f37", partial: "#bf8700", offline: "#cf222e", empty: "#6e7781" };
  document.addEventListener("DOMContentLoaded", function () {
    var holder = document.getElementById("fleet-map");
    if (!holder || typeof L === "undefined") { return; }
    var map = L.map(holder, { preferCanvas: true, maxZoom: 18 }).setView([39.5, -98.35], 4);
    if (holder.dataset.tiles) {
      L.tileLayer(holder.dataset.tiles, { maxZoom: 19, attribution: holder.dataset.attribution || "" }).addTo(map);
    }
    var summary = document.getElementById("map-summary");
    fetch(holder.dataset.sites, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (data) {
        var clusters = L.markerClusterGroup({ chunkedLoading: true, showCoverageOnHover: false });
        var markers = data.sites.map(function (s) {
          var marker = L.circleMarker([s[0], s[1]], {
            radius: 7, color: "#fff", weight: 1, fillColor: COLOURS[s[6]] || "#6e7781", fillOpacity: 0.9
          });
          marker.bindPopup(s[2] + " · " + s[3] + "<br>" + s[5] + " of " + s[4] + " devices online");
          return marker;
        });
        clusters.addLayers(markers);
        map.addLayer(clusters);
        if (markers.length) { map.fitBounds(clusters.getBounds(), { padding: [20, 20] }); }
        summary.textContent = markers.length
          ? markers.length.toLocaleString() + " sites on the map; zoom in to split the clusters."
          : "No sites with coordinates match: widen the filters, or add latitude and longitude to the fleet file.";
        holder.dataset.loaded = String(markers.length);
      })
      .catch(function (status) { summary.textContent = "The sites could not be loaded (" + status + ")."; });
  });
})();
