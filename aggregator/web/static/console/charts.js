// Interactive charts: each <figure class="chart" data-chart="{...}"> gets a uPlot chart of its series (hover shows
// every series' value at that interval in the legend; drag to zoom, double-click to reset), in the market's clock.
// The figure's SVG stays for readers without scripts and is hidden once the chart is drawn. A live part of the page
// that console.js refreshes is drawn again ("console:refreshed").
(function () {
  function draw(figure) {
    if (figure.dataset.drawn || typeof uPlot === "undefined") { return; }
    var spec = JSON.parse(figure.dataset.chart);
    var holder = figure.querySelector(".chart-live");
    var width = Math.min(figure.parentElement.clientWidth || 720, 900);
    var options = {
      width: width,
      height: 280,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), spec.zone); },
      cursor: { drag: { x: true, y: false } },
      scales: { y: { range: function (u, min, max) { return [Math.min(min, 0) * 1.05, Math.max(max, 1) * 1.05]; } } },
      axes: [{}, { label: spec.unit, size: 60 }],
      series: [{ label: "Interval (" + spec.zone + ")" }].concat(spec.series.map(function (s) {
        return {
          label: s.label, stroke: s.color, width: 2, dash: s.dash, paths: uPlot.paths.stepped({ align: 1 }),
          value: function (u, v) { return v == null ? "–" : v.toFixed(1) + " " + spec.unit; }
        };
      }))
    };
    var data = [spec.t].concat(spec.series.map(function (s) { return s.values; }));
    holder.hidden = false;
    new uPlot(options, data, holder);
    var svg = figure.querySelector("svg");
    if (svg) { svg.style.display = "none"; }
    figure.dataset.drawn = "1";
  }
  function drawAll(root) { root.querySelectorAll("figure.chart[data-chart]").forEach(draw); }
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("console:refreshed", function (e) { drawAll(e.target); });
})();
