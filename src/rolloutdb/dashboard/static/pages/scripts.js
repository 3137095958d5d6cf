// Scripts: every version with its replay statistics; paged, sortable.
import { api } from "../api.js";
import { add, duration, h, number, pager, percent, route, shortId, table, time } from "../dom.js";
import { select } from "./runs.js";

const LIMIT = 50;
const SORTS = ["replay_count", "success_count", "mean_execution_seconds", "created_at", "name"];

export async function scriptsPage(container, params) {
  const offset = Number(params.offset) || 0;
  const sort = SORTS.includes(params.sort) ? params.sort : "replay_count";
  const page = await api("/scripts", { params: { sort, order: "desc", limit: LIMIT, offset,
                                                 name__contains: params.q, active: params.active } });
  const search = h("input", { type: "search", name: "q", value: params.q || "", placeholder: "name contains…" });
  const sorting = select("sort", SORTS, sort);
  add(container, h("h1", {}, "Scripts"),
    h("form", { class: "filters", onsubmit: (event) => {
      event.preventDefault();
      location.hash = route("scripts", null, { q: search.value, sort: sorting.value });
    } }, search, " sort by ", sorting, " ", h("button", { type: "submit" }, "Show")),
    table(["name", "version", "active", "task", "actions", "replays", "success rate", "mean replay", "recorded from",
           "updated"],
      page.items.map((script) => h("tr", { dataset: { script: script.id } }, h("td", {}, script.name),
        h("td", {}, script.version), h("td", {}, script.active ? "active" : "—"), h("td", {}, shortId(script.task_id)),
        h("td", {}, number(script.total_steps)), h("td", { class: "replays" }, number(script.replay_count)),
        h("td", {}, script.replay_count ? percent(script.success_count / script.replay_count) : "—"),
        h("td", {}, duration(script.mean_execution_seconds)),
        h("td", {}, script.source_rollout_id
          ? h("a", { href: route("rollouts", script.source_rollout_id) }, shortId(script.source_rollout_id)) : "—"),
        h("td", {}, time(script.updated_at)))), { id: "scripts" }),
    pager(page, (at) => route("scripts", null, { ...params, offset: at })));
}
