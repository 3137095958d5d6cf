// Queue and workers: rollouts by status, the oldest waiting, attempts under way, and the workers with their
// heartbeats and current rollouts; live.
import { api, follow } from "../api.js";
import { add, ago, badge, clear, h, number, pager, route, shortId, table, time } from "../dom.js";
import { liveBadge } from "./live.js";

const LIMIT = 50;
const WORKERS_EVERY_MS = 10000;  // heartbeats are no events: the workers' table is read again this often

export async function queuePage(container, params) {
  const offset = Number(params.offset) || 0;
  const live = liveBadge();
  const counts = h("section", { id: "queue-counts" });
  const workers = h("section", { id: "workers" });
  add(container, h("h1", {}, "Queue and workers ", live.element), counts, workers);
  showCounts(counts, await api("/queue"));
  const readWorkers = async () => showWorkers(workers, await api("/workers", {
    params: { sort: "last_heartbeat_at", order: "desc", limit: LIMIT, offset } }), params);
  await readWorkers();
  let pending = false;
  const stop = follow({ topics: ["queue"] }, {
    queue: (summary) => {
      showCounts(counts, summary);
      if (!pending) {
        pending = true;
        setTimeout(() => { pending = false; readWorkers().catch(() => {}); }, 1000);
      }
    },
  }, live.set);
  const ticking = setInterval(() => readWorkers().catch(() => {}), WORKERS_EVERY_MS);
  return () => { stop(); clearInterval(ticking); };
}

function showCounts(section, summary) {
  const entries = (counts) => Object.entries(counts).map(([status, count]) =>
    h("tr", {}, h("td", {}, h("a", { href: route("rollouts", null, { status }) }, badge(status))),
      h("td", { class: "count", dataset: { status } }, number(count))));
  clear(section,
    h("div", { class: "tiles" },
      h("div", { class: "tile" }, h("div", { class: "tile-value", id: "waiting" }, number(summary.waiting)),
        h("div", { class: "tile-label" }, "waiting")),
      h("div", { class: "tile" },
        h("div", { class: "tile-value", id: "oldest-waiting", title: summary.oldest_queued_at || "" },
          summary.oldest_queued_at ? ago(summary.oldest_queued_at) : "—"),
        h("div", { class: "tile-label" }, "oldest waiting since")),
      h("div", { class: "tile" }, h("div", { class: "tile-value" }, number(summary.workers.length)),
        h("div", { class: "tile-label" }, "workers"))),
    h("div", { class: "columns" },
      h("div", {}, h("h2", {}, "Rollouts by status"), table(["status", "rollouts"], entries(summary.rollouts_by_status),
                                                            { id: "rollouts-by-status" })),
      h("div", {}, h("h2", {}, "Attempts of unfinished rollouts"),
        table(["status", "attempts"], Object.entries(summary.attempts_by_status).map(([status, count]) =>
          h("tr", {}, h("td", {}, badge(status)), h("td", {}, number(count)))), { id: "attempts-by-status" }))));
}

function showWorkers(section, page, params) {
  clear(section, h("h2", {}, "Workers"),
    table(["worker", "status", "last heartbeat", "current rollout", "last dequeue", "stats"], page.items.map((worker) =>
      h("tr", { dataset: { worker: worker.id } }, h("td", {}, worker.id), h("td", {}, badge(worker.status)),
        h("td", { title: time(worker.last_heartbeat_at) }, ago(worker.last_heartbeat_at)),
        h("td", {}, worker.current_rollout_id
          ? h("a", { href: route("rollouts", worker.current_rollout_id) }, shortId(worker.current_rollout_id)) : "—"),
        h("td", {}, ago(worker.last_dequeue_at)),
        h("td", { class: "small" }, worker.heartbeat_stats ? JSON.stringify(worker.heartbeat_stats) : "—"))),
      { id: "workers-table" }),
    pager(page, (at) => route("queue", null, { ...params, offset: at })));
}
