// The fleet map: points from the page's JSON (?format=json&zoom=&bbox=), clustered by Leaflet.markercluster and
// coloured by state. Zoomed out a point is the sites of one grid cell, node and state (the server sums them, so a
// large fleet arrives as a few hundred points); the clusters count sites, not points. Each pan or zoom asks again.
// No base layer unless the page names a tile URL (settings.CONSOLE_MAP_TILE_URL): offline, the map is blank.
(function () {
  var COLOURS = { online: "#1a7f37", partial: "#bf8700", offline: "#cf222e", empty: "#6e7781" };
  function sitesIn(cluster) {
    return cluster.getAllChildMarkers().reduce(function (sum, m) { return sum + m.options.sites; }, 0);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var holder = document.getElementById("fleet-map");
    if (!holder || typeof L === "undefined") { return; }
    var map = L.map(holder, { preferCanvas: true, maxZoom: 18 }).setView([39.5, -98.35], 4);
    if (holder.dataset.tiles) {
      L.tileLayer(holder.dataset.tiles, { maxZoom: 18, attribution: holder.dataset.attribution || "" }).addTo(map);
    }
    var summary = document.getElementById("map-summary");
    var clusters = L.markerClusterGroup({
      chunkedLoading: true,
      showCoverageOnHover: false,
      iconCreateFunction: function (cluster) {
        var n = sitesIn(cluster), size = n < 100 ? "small" : n < 1000 ? "medium" : "large";
        return L.divIcon({
          html: "<div><span>" + n.toLocaleString() + "</span></div>",
          className: "marker-cluster marker-cluster-" + size,
          iconSize: L.point(40, 40)
        });
      }
    }).addTo(map);
    var fitted = false, latest = 0;
    function load() {
      var b = map.getBounds(), ask = ++latest;
      var url = holder.dataset.sites + "&zoom=" + map.getZoom() + "&bbox=" +
        [b.getSouth(), b.getWest(), b.getNorth(), b.getEast()].map(function (v) { return v.toFixed(4); }).join(",");
      if (!fitted) { url = holder.dataset.sites + "&zoom=" + map.getZoom(); }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
        .then(function (data) {
          if (ask !== latest) { return; }
          var total = 0;
          var markers = data.points.map(function (p) {
            total += p[4];
            var marker = L.circleMarker([p[0], p[1]], {
              radius: p[4] > 1 ? Math.min(6 + Math.log(p[4]) * 2, 16) : 7,
              color: "#fff", weight: 1, fillColor: COLOURS[p[3]] || "#6e7781", fillOpacity: 0.9, sites: p[4]
            });
            marker.bindPopup((p[4] > 1 ? p[4].toLocaleString() + " sites · " : "") + "pricing node " + p[2] +
              "<br>" + p[6].toLocaleString() + " of " + p[5].toLocaleString() + " devices online");
            return marker;
          });
          clusters.clearLayers();
          clusters.addLayers(markers);
          if (!fitted) {
            fitted = true;
            if (markers.length) { map.fitBounds(clusters.getBounds(), { padding: [20, 20], maxZoom: 12 }); }
            map.on("moveend", load);
          }
          summary.textContent = total
            ? total.toLocaleString() + " sites on the map; zoom in to split the clusters."
            : "No sites with coordinates match: widen the filters, or add latitude and longitude to the fleet file.";
          holder.dataset.loaded = String(total);
        })
        .catch(function (status) { summary.textContent = "The sites could not be loaded (" + status + ")."; });
    }
    load();
  });
})();
