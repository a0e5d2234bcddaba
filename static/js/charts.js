// Draws every <canvas data-chart="..."> from the JSON that a json_script tag holds (data-source: its id).
// `series` charts take {buckets, series: [{key, amounts}]} (stacked bars per time bucket);
// `breakdown` charts take [{key, amount}] (a doughnut). Amounts arrive as decimal strings.
// `line` charts take {times: [iso], <data-series>: {label, unit, values}} (one line over time; nulls are gaps).
// `pool` charts take {times: [iso], size, desired, draining, load}: instances on the left axis, requests (in
// flight, waiting and held) on the right.
// Content swapped in by HTMX (htmx:load) is drawn too; a canvas drawn before is redrawn from fresh data.
(function () {
  "use strict";
  var PALETTE = ["#3552d4", "#1f9d55", "#e07b1a", "#7b4ddb", "#1aa3d9", "#d63b3b", "#c79a00", "#14a39a",
                 "#4b50c8", "#8a93a3", "#b04fa0"];

  function colour(i) { return PALETTE[i % PALETTE.length]; }

  // Day bars read as their date (UTC, YYYY-MM-DD); hour bars as their time, with the date at midnight.
  function label(iso, bucket) {
    var at = new Date(iso);
    if (bucket === "day") return at.toISOString().slice(0, 10);
    var time = at.toISOString().slice(11, 16);
    return bucket === "hour" && at.getUTCHours() === 0 ? at.toISOString().slice(5, 10) + " " + time : time;
  }

  function seriesChart(canvas, data) {
    return new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.buckets.map(function (iso) { return label(iso, data.bucket); }),
        datasets: data.series.map(function (line, i) {
          return {label: line.key, data: line.amounts.map(Number), backgroundColor: colour(i), stack: "spend"};
        }),
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: {x: {stacked: true}, y: {stacked: true, title: {display: true, text: "EUR"}}},
        plugins: {legend: {position: "bottom"}},
      },
    });
  }

  function breakdownChart(canvas, rows) {
    return new Chart(canvas, {
      type: "doughnut",
      data: {
        labels: rows.map(function (row) { return row.key; }),
        datasets: [{data: rows.map(function (row) { return Number(row.amount); }),
                    backgroundColor: rows.map(function (_, i) { return colour(i); })}],
      },
      options: {animation: false, responsive: true, maintainAspectRatio: false,
                plugins: {legend: {position: "bottom"}}},
    });
  }

  function lineChart(canvas, data, key) {
    var line = data[key];
    return new Chart(canvas, {
      type: "line",
      data: {
        labels: data.times.map(function (iso) { return new Date(iso).toISOString().slice(11, 19); }),
        datasets: [{label: line.label + " (" + line.unit + ")", data: line.values, borderColor: colour(0),
                    backgroundColor: colour(0), pointRadius: 0, borderWidth: 2, spanGaps: false}],
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: {x: {ticks: {maxTicksLimit: 8}}, y: {beginAtZero: true, title: {display: true, text: line.unit}}},
        plugins: {legend: {position: "bottom"}},
      },
    });
  }

  function poolChart(canvas, data) {
    var instances = {yAxisID: "instances", pointRadius: 0, borderWidth: 2, stepped: true};
    function line(name, i, extra) {
      return Object.assign({label: name, data: data[name], borderColor: colour(i), backgroundColor: colour(i)}, extra);
    }
    return new Chart(canvas, {
      type: "line",
      data: {
        labels: data.times.map(function (iso) { return new Date(iso).toISOString().slice(11, 19); }),
        datasets: [
          line("size", 1, instances),
          line("desired", 0, Object.assign({borderDash: [6, 4]}, instances)),
          line("draining", 6, instances),
          line("load", 2, {yAxisID: "load", pointRadius: 0, borderWidth: 1.5}),
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
    (root && root.querySelectorAll ? root : document).querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var source = document.getElementById(canvas.dataset.source);
      if (!source) { return; }
      var data = JSON.parse(source.textContent);
      var previous = Chart.getChart(canvas);
      if (previous) { previous.destroy(); }
      if (canvas.dataset.chart === "series") { seriesChart(canvas, data); }
      else if (canvas.dataset.chart === "breakdown") { breakdownChart(canvas, data); }
      else if (canvas.dataset.chart === "line") { lineChart(canvas, data, canvas.dataset.series); }
      else if (canvas.dataset.chart === "pool") { poolChart(canvas, data); }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { draw(document); });
  } else { draw(document); }
  document.addEventListener("htmx:load", function (event) { draw(event.detail && event.detail.elt); });
})();
