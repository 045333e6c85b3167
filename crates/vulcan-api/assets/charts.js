// Benchmark charts: one SVG bar chart per figure, and a table of every figure. Shared by
// the dashboard's Benchmarks page and the report `vulcan benchmark --html` writes.
"use strict";
(function () {
  const METRICS = [
    { key: "cold_start_ms", title: "cold start", unit: "ms" },
    { key: "warm_start_ms", title: "warm start", unit: "ms" },
    { key: "p50_ms", title: "p50", unit: "ms" },
    { key: "p95_ms", title: "p95", unit: "ms" },
    { key: "throughput_per_s", title: "throughput", unit: "/s" },
    { key: "memory_per_workload_mb", title: "memory per workload", unit: "MB" },
  ];
  const svgNs = "http://www.w3.org/2000/svg";
  const el = (ns, name, attrs, text) => {
    const e = ns ? document.createElementNS(ns, name) : document.createElement(name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const label = (r) => (r.mode === "function" ? `${r.backend} fn` : r.backend);

  // Draws `report`'s results into `charts` (a figure per metric) and `table`; returns the
  // number of charts drawn.
  function draw(report, charts, table) {
    charts.replaceChildren();
    table.replaceChildren();
    const measured = report.results.filter((r) => !r.skipped);
    for (const m of METRICS) {
      const fig = el(null, "figure", { "data-metric": m.key });
      fig.appendChild(el(null, "figcaption", {}, `${m.title} (${m.unit})`));
      const rowH = 34, labelW = 100, width = 340;
      const svg = el(svgNs, "svg", {
        width, height: rowH * measured.length + 10, role: "img",
        "aria-label": `${m.title} per backend`,
      });
      const max = Math.max(1e-9, ...measured.map((r) => r[m.key] || 0));
      measured.forEach((r, i) => {
        const v = r[m.key] || 0, w = Math.max(1, ((width - labelW - 70) * v) / max), y = 5 + i * rowH;
        svg.appendChild(el(svgNs, "text", { x: 0, y: y + 18 }, label(r)));
        svg.appendChild(el(svgNs, "rect", {
          class: "bar", x: labelW, y, width: w, height: rowH - 10,
          "data-backend": r.backend, "data-mode": r.mode || "workload", "data-value": v,
        }));
        svg.appendChild(el(svgNs, "text", { x: labelW + w + 6, y: y + 18 }, v.toFixed(1)));
      });
      fig.appendChild(svg);
      charts.appendChild(fig);
    }
    const head = el(null, "tr");
    ["backend", ...METRICS.map((m) => `${m.title} (${m.unit})`), "note"].forEach((h) =>
      head.appendChild(el(null, "th", { scope: "col" }, h)));
    table.appendChild(head);
    for (const r of report.results) {
      const tr = el(null, "tr");
      tr.appendChild(el(null, "td", {}, label(r)));
      METRICS.forEach((m) => tr.appendChild(el(null, "td", {}, r[m.key] == null ? "-" : r[m.key].toFixed(1))));
      const starts = Object.entries(r.start_ms || {}).map(([how, ms]) => `${how} ${ms.toFixed(0)} ms`).join(", ");
      const note = (r.skipped ? "skipped: " + r.skipped : `${r.failed_runs}/${r.runs} runs failed`) +
        (starts ? `; sandbox start (median): ${starts}` : "");
      tr.appendChild(el(null, "td", {}, note));
      table.appendChild(tr);
    }
    return METRICS.length;
  }

  window.vulcanBenchmarkCharts = draw;
})();
