// Draws every <canvas data-chart="bar|line" data-source="ID"> from the JSON in <script id="ID">: either a list
// of [label, value] pairs (one series) or {labels: [...], datasets: [{label, data}]}; data-stacked="true" stacks
// the datasets. The table beside each chart carries the same numbers, so the page reads without JavaScript.
(function () {
  "use strict";
  var PALETTE = ["#3b6ea8", "#d2862b", "#3a9d6b", "#a23b72", "#6b5ca5"];
  var charts = new WeakMap();

  // Text and grid colours from the page's CSS variables (--chart-text, --chart-grid), so the charts follow its
  // light or dark scheme.
  function theme() {
    var css = getComputedStyle(document.documentElement);
    Chart.defaults.color = css.getPropertyValue("--chart-text").trim() || Chart.defaults.color;
    Chart.defaults.borderColor = css.getPropertyValue("--chart-grid").trim() || Chart.defaults.borderColor;
  }

  function normalise(raw) {
    if (Array.isArray(raw)) {
      return { labels: raw.map(function (r) { return r[0]; }),
               datasets: [{ label: "", data: raw.map(function (r) { return r[1]; }) }] };
    }
    return raw;
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.source);
    if (!source || typeof Chart === "undefined") { return; }
    theme();
    var data = normalise(JSON.parse(source.textContent));
    data.datasets.forEach(function (ds, i) {
      ds.backgroundColor = ds.borderColor = PALETTE[i % PALETTE.length];
      ds.pointRadius = 0; ds.borderWidth = 2; ds.spanGaps = true;
    });
    var stacked = canvas.dataset.stacked === "true";
    var previous = charts.get(canvas);
    if (previous) { previous.destroy(); }
    charts.set(canvas, new Chart(canvas, {
      type: canvas.dataset.chart,
      data: data,
      options: {
        animation: false,
        plugins: { legend: { display: data.datasets.length > 1 && data.datasets[0].label !== "" } },
        scales: { y: { beginAtZero: true, stacked: stacked }, x: { stacked: stacked, ticks: { maxTicksLimit: 12 } } }
      }
    }));
  }

  function drawAll() { document.querySelectorAll("canvas[data-chart]").forEach(draw); }

  document.addEventListener("DOMContentLoaded", drawAll);
  document.addEventListener("htmx:afterSettle", drawAll);
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", drawAll);
  window.fleetdeckCharts = { draw: draw };
})();
