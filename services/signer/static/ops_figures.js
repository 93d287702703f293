// The operators' figures page: draws each <canvas data-chart> with Chart.js (vendored, served by Paraaf).
// The figures come from the page itself (the data-chart attribute, written by the server from the same
// figures as the tables beside it): no inline script, no fetch. When everything is drawn, the page's root
// element says so (data-charts="ready"), for people's tools and the tests.
(function () {
  "use strict";
  var COLOURS = ["#0b5394", "#a4161a", "#38761d", "#b45f06", "#674ea7", "#4a4a4a"];

  function draw(canvas) {
    var chart = JSON.parse(canvas.getAttribute("data-chart"));
    var horizontal = chart.kind === "hbar";
    if (horizontal) {
      canvas.parentNode.style.height = Math.max(160, 28 * chart.labels.length + 60) + "px";
    }
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: chart.labels,
        datasets: chart.datasets.map(function (set, n) {
          return { label: set.label, data: set.values, backgroundColor: COLOURS[n % COLOURS.length] };
        })
      },
      options: {
        indexAxis: horizontal ? "y" : "x",
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: chart.datasets.length > 1 } },
        scales: { x: { beginAtZero: true }, y: { beginAtZero: true } }
      }
    });
  }

  function start() {
    var root = document.getElementById("figures");
    if (!root || !window.Chart) { return; }
    var canvases = root.querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < canvases.length; i++) { draw(canvases[i]); }
    root.setAttribute("data-charts", "ready");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
