// Draws every <canvas data-chart="bar" data-source="ID"> from the JSON in <script id="ID">: a list of
// [label, value] pairs. The table beside each chart carries the same numbers, so the page reads without JS.
(function () {
  "use strict";
  var charts = new WeakMap();

  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.source);
    if (!source || typeof Chart === "undefined") { return; }
    var rows = JSON.parse(source.textContent);
    var previous = charts.get(canvas);
    if (previous) { previous.destroy(); }
    charts.set(canvas, new Chart(canvas, {
      type: canvas.dataset.chart,
      data: {
        labels: rows.map(function (r) { return r[0]; }),
        datasets: [{ data: rows.map(function (r) { return r[1]; }), backgroundColor: "#3b6ea8" }]
      },
      options: { animation: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } }
    }));
  }

  function drawAll(root) {
    (root || document).querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function () { drawAll(document); });
})();
