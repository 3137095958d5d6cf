// Step metrics over steps (uPlot): one metric, with its spread (mean ± std) as a band when the steps have it.
import uPlot from "../vendor/uplot/uPlot.esm.js";
import { h } from "../dom.js";

// The numeric metrics the steps logged, reward_mean and success_rate first.
const STEP_INCREMENTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];  // whole steps only

export function metricNames(steps) {
  const names = new Set();
  for (const step of steps) {
    for (const [name, value] of Object.entries(step.metrics || {})) if (typeof value === "number") names.add(name);
  }
  const first = ["reward_mean", "success_rate", "loss"].filter((name) => names.has(name));
  return [...first, ...[...names].filter((name) => !first.includes(name)).sort()];
}

// The metric that is name's spread: reward_std for reward_mean, loss_std for loss.
export function spreadOf(name, names) {
  const base = name.endsWith("_mean") ? name.slice(0, -5) : name;
  return names.find((candidate) => candidate === base + "_std") || null;
}

export function stepChart(steps, metric, width) {
  const names = metricNames(steps);
  const spread = spreadOf(metric, names);
  const value = (step, name) => (typeof step.metrics?.[name] === "number" ? step.metrics[name] : null);
  const x = steps.map((step) => step.number);
  const y = steps.map((step) => value(step, metric));
  const data = [x, y];
  const series = [{ label: "step" }, { label: metric, stroke: "#2563eb", width: 2, points: { show: true } }];
  const bands = [];
  if (spread) {
    const sd = steps.map((step) => value(step, spread));
    data.push(y.map((mean, i) => (mean === null || sd[i] === null ? null : mean + sd[i])));
    data.push(y.map((mean, i) => (mean === null || sd[i] === null ? null : mean - sd[i])));
    series.push({ label: `+${spread}`, stroke: "rgba(37,99,235,0.35)", dash: [4, 4] });
    series.push({ label: `−${spread}`, stroke: "rgba(37,99,235,0.35)", dash: [4, 4] });
    bands.push({ series: [2, 3], fill: "rgba(37,99,235,0.12)" });
  }
  const element = h("div", { class: "chart", dataset: { metric, points: String(y.filter((v) => v !== null).length) } });
  const plot = new uPlot({ width: Math.max(320, width), height: 260, scales: { x: { time: false } }, series, bands,
                           axes: [{ label: "step", incrs: STEP_INCREMENTS }, { label: metric }] }, data, element);
  return { element, destroy: () => plot.destroy() };
}
