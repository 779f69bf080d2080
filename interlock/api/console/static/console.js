// The console's own script: draws the charts (uPlot) from the JSON data blocks the server renders, copies a new
// key, asks before revoking, and submits filter selects on change. No inline script anywhere (strict CSP).
"use strict";

(function () {
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563", "#65a30d"];

  function formatValue(unit, v) {
    if (v == null) return "–";
    if (unit === "$") return "$" + (v === 0 ? "0" : Math.abs(v) < 0.01 ? v.toFixed(6) : Math.abs(v) < 1 ? v.toFixed(4) : v.toFixed(2));
    if (unit === "ms") return v.toFixed(1) + " ms";
    return v % 1 === 0 ? v.toLocaleString() : "";
  }

  function drawChart(holder) {
    const block = document.getElementById(holder.dataset.chart);
    if (!block || holder.dataset.drawn) return;
    const spec = JSON.parse(block.textContent);
    const raw = spec.series.map((s) => s.values);
    let shown = raw;
    if (spec.stacked) {
      // Cumulative sums, drawn largest first so each band shows one group's share.
      const sums = [];
      let running = spec.x.map(() => 0);
      for (const values of raw) {
        running = running.map((acc, i) => acc + (values[i] || 0));
        sums.push(running);
      }
      shown = sums;
    }
    const order = spec.stacked ? shown.map((_, i) => shown.length - 1 - i) : shown.map((_, i) => i);
    const series = [{}];
    const data = [spec.x];
    for (const i of order) {
      const color = PALETTE[i % PALETTE.length];
      series.push({
        label: spec.series[i].label,
        stroke: color,
        width: 2,
        fill: spec.stacked ? color + "55" : undefined,
        spanGaps: !spec.stacked,
        // Sparse data (a new install, a quiet hour) shows as dots, not as nothing.
        points: { show: raw[i].filter((v) => v != null).length < 40, size: 7, fill: color },
        value: (u, v, si, idx) => formatValue(spec.unit, idx == null ? null : raw[i][idx]),
      });
      data.push(shown[i]);
    }
    const width = Math.max(280, holder.clientWidth || 600);
    const step = spec.x.length > 1 ? spec.x[1] - spec.x[0] : 3600;
    const options = {
      width: width,
      height: 240,
      series: series,
      // Half a bucket of room on each side, so the first and the latest bucket show whole.
      scales: { x: { time: true, range: (u, min, max) => [min - step / 2, max + step / 2] } },
      axes: [{}, { size: 70, values: (u, ticks) => ticks.map((t) => formatValue(spec.unit, t)) }],
      legend: { live: true },
    };
    holder.textContent = "";
    const plot = new uPlot(options, data, holder);
    const points = raw.reduce((n, values) => n + values.filter((v) => v != null && v !== 0).length, 0);
    holder.dataset.drawn = String(points);
    holder.uplot = plot;
    keyboardLegend(holder, plot);
  }

  // uPlot toggles a series when its legend entry is clicked; make that a keyboard control too.
  function keyboardLegend(holder, plot) {
    holder.querySelectorAll(".u-legend tr.u-series").forEach((row, i) => {
      if (i === 0) return; // the time column
      const label = row.querySelector(".u-label");
      row.tabIndex = 0;
      row.setAttribute("role", "button");
      row.setAttribute("aria-pressed", "true");
      row.setAttribute("aria-label", "Show or hide " + (label ? label.textContent : "series"));
      const sync = () => row.setAttribute("aria-pressed", String(plot.series[i].show));
      row.addEventListener("click", () => window.setTimeout(sync, 0));
      row.addEventListener("keydown", (event) => {
        if (event.key !== "Enter" && event.key !== " ") return;
        event.preventDefault();
        plot.setSeries(i, { show: !plot.series[i].show });
        sync();
      });
    });
  }

  function drawAll(root) {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll("[data-chart]").forEach(drawChart);
  }

  function wire(root) {
    root.querySelectorAll("button[data-copy]").forEach((button) => {
      if (button.dataset.wired) return;
      button.dataset.wired = "1";
      button.addEventListener("click", async () => {
        const field = document.getElementById(button.dataset.copy);
        const note = document.querySelector('[data-copied-for="' + button.dataset.copy + '"]');
        try {
          await navigator.clipboard.writeText(field.value);
          if (note) note.textContent = "Copied.";
        } catch (err) {
          field.select();
          if (note) note.textContent = "Select the key and copy it (the browser refused clipboard access).";
        }
      });
    });
    root.querySelectorAll("form[data-confirm]").forEach((form) => {
      if (form.dataset.wired) return;
      form.dataset.wired = "1";
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
    root.querySelectorAll("select[data-autosubmit]").forEach((select) => {
      if (select.dataset.wired) return;
      select.dataset.wired = "1";
      select.addEventListener("change", () => select.form.requestSubmit());
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    drawAll(document);
    wire(document);
  });
  document.addEventListener("htmx:afterSettle", (event) => {
    drawAll(event.target);
    wire(event.target);
  });
})();
