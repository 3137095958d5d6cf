// Runs: every run with its status, stage, progress and ETA, live; filtered by name, status and kind; paged.
import { api, follow, path } from "../api.js";
import { add, ago, badge, eta, h, pager, progressBar, route, setProgress, table } from "../dom.js";
import { liveBadge } from "./live.js";

const LIMIT = 50;
const RELOAD_AFTER_MS = 1000;
const RUN_STATUSES = ["", "pending", "running", "paused", "completed", "failed", "cancelled"];
const KINDS = ["", "train", "eval", "baseline", "job"];

export async function runsPage(container, params) {
  const offset = Number(params.offset) || 0;
  const filters = { name__contains: params.q, status: params.status, kind: params.kind };
  const page = await api("/runs", { params: { sort: "created_at", order: "desc", limit: LIMIT, offset, ...filters } });
  const search = h("input", { type: "search", name: "q", value: params.q || "", placeholder: "name contains…" });
  const status = select("status", RUN_STATUSES, params.status);
  const kind = select("kind", KINDS, params.kind);
  const live = liveBadge();
  const rows = new Map();  // run id -> its row's cells that change
  const body = page.items.map((run) => {
    const cells = { status: h("td", {}, badge(run.status)), stage: h("td", {}, run.stage || "—"),
                    bar: progressBar(run.progress), eta: h("td", { class: "eta" }, eta(run)) };
    rows.set(run.id, { run, cells });
    return h("tr", { dataset: { run: run.id } },
      h("td", {}, h("a", { href: route("runs", run.name), class: "run-name" }, run.name)),
      h("td", {}, run.kind), cells.status, cells.stage, h("td", { class: "progress" }, cells.bar), cells.eta,
      h("td", { title: run.created_at }, ago(run.created_at)));
  });
  add(container, 
    h("h1", {}, "Runs ", live.element),
    h("form", { class: "filters", onsubmit: (event) => {
      event.preventDefault();
      location.hash = route("runs", null, { q: search.value, status: status.value, kind: kind.value });
    } }, search, " status ", status, " kind ", kind, " ", h("button", { type: "submit" }, "Filter")),
    table(["name", "kind", "status", "stage", "progress", "ETA", "created"], body, { id: "runs" }),
    pager(page, (at) => route("runs", null, { ...params, offset: at })));

  const update = (run) => {
    const row = rows.get(run.id);
    if (!row) return;
    Object.assign(row.run, run);
    row.cells.status.replaceChildren(badge(row.run.status));
    row.cells.stage.textContent = row.run.stage || "—";
    setProgress(row.cells.bar, row.run.progress);
    row.cells.eta.textContent = eta(row.run);
  };
  const refreshing = new Set();
  const refresh = (runId) => {  // a change the event does not carry (a step moved a training run's progress)
    if (!rows.has(runId) || refreshing.has(runId)) return;
    refreshing.add(runId);
    setTimeout(() => api("/runs/" + path(runId)).then(update).catch(() => {}).finally(() => refreshing.delete(runId)),
               500);
  };
  // A run this page does not show (a new one): the first page is read again, a moment later, once.
  let reloading = null;
  const reload = () => {
    if (offset === 0 && reloading === null) {
      reloading = setTimeout(() => window.dispatchEvent(new HashChangeEvent("hashchange")), RELOAD_AFTER_MS);
    }
  };
  const stop = follow({ topics: ["job", "run", "step"] }, {
    job: (event) => update({ id: event.run_id, ...pick(event.data, ["progress", "stage", "message", "status"]) }),
    run: (event) => (rows.has(event.run_id) ? refresh(event.run_id) : reload()),
    step: (event) => refresh(event.run_id),
  }, live.set);
  const ticking = setInterval(() => rows.forEach((row) => { row.cells.eta.textContent = eta(row.run); }), 5000);
  return () => { stop(); clearInterval(ticking); clearTimeout(reloading); };
}

function pick(data, names) {
  const picked = {};
  for (const name of names) if (data[name] !== undefined && data[name] !== null) picked[name] = data[name];
  return picked;
}

export function select(name, values, chosen) {
  return h("select", { name }, values.map((value) =>
    h("option", { value, selected: value === (chosen || "") }, value || "any")));
}
