// Draws the pool chart: <canvas data-pool-chart data-source="ID"> from the JSON a json_script tag holds,
// {times: [iso], size: [n], desired: [n], draining: [n], load: [n]}. Size, desired and draining are
// instances (left axis); load is requests in flight, waiting and held (right axis).
// Content swapped in by HTMX (htmx:load) is drawn too; a canvas drawn before is redrawn from fresh data.
(function () {
  "use strict";

  function chart(canvas, data) {
    var instances = {yAxisID: "instances", pointRadius: 0, borderWidth: 2, stepped: true};
    return new Chart(canvas, {
      type: "line",
      data: {
        labels: data.times.map(function (iso) { return new Date(iso).toISOString().slice(11, 19); }),
        datasets: [
          Object.assign({label: "size", data: data.size, borderColor: "#1f9d55", backgroundColor: "#1f9d55"}, instances),
          Object.assign({label: "desired", data: data.desired, borderColor: "#3552d4", backgroundColor: "#3552d4",
                         borderDash: [6, 4]}, instances),
          Object.assign({label: "draining", data: data.draining, borderColor: "#c79a00", backgroundColor: "#c79a00"},
                        instances),
          {label: "load", data: data.load, yAxisID: "load", borderColor: "#e07b1a", backgroundColor: "#e07b1a",
           pointRadius: 0, borderWidth: 1.5},
        ],
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: {
          x: {ticks: {maxTicksLimit: 8}},
          instances: {position: "left", beginAtZero: true, ticks: {precision: 0}, title: {display: true, text: "instances"}},
          load: {position: "right", beginAtZero: true, grid: {drawOnChartArea: false},
                 title: {display: true, text: "requests"}},
        },
        plugins: {legend: {position: "bottom"}},
      },
    });
  }

  function draw(root) {
    if (typeof Chart === "undefined") { return; }
    (root && root.querySelectorAll ? root : document).querySelectorAll("canvas[data-pool-chart]").forEach(function (canvas) {
      var source = document.getElementById(canvas.dataset.source);
      if (!source) { return; }
      var previous = Chart.getChart(canvas);
      if (previous) { previous.destroy(); }
      chart(canvas, JSON.parse(source.textContent));
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { draw(document); });
  } else { draw(document); }
  document.addEventListener("htmx:load", function (event) { draw(event.detail && event.detail.elt); });
})();
