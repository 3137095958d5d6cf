// Rollouts: of a run, a group or a status; paged, newest first.
import { api, taskNames } from "../api.js";
import { add, ago, badge, h, number, pager, route, shortId, table } from "../dom.js";
import { select } from "./runs.js";

const LIMIT = 50;
const STATUSES = ["", "queuing", "preparing", "running", "requeuing", "succeeded", "failed", "cancelled"];

export async function rolloutsPage(container, params) {
  const offset = Number(params.offset) || 0;
  const page = await api("/rollouts", { params: {
    run_id: params.run, group_id: params.group, status: params.status, task_id: params.task,
    sort: "created_at", order: "desc", limit: LIMIT, offset } });
  const tasks = await taskNames(page.items.map((rollout) => rollout.task_id));
  const status = select("status", STATUSES, params.status);
  add(container, h("h1", {}, "Rollouts"),
    h("form", { class: "filters", onsubmit: (event) => {
      event.preventDefault();
      location.hash = route("rollouts", null, { ...params, status: status.value, offset: undefined });
    } }, params.run ? h("span", {}, "run ", h("a", { href: route("runs", params.run) }, shortId(params.run)), " ") : null,
      params.group ? h("span", {}, "group " + shortId(params.group) + " ") : null,
      "status ", status, " ", h("button", { type: "submit" }, "Filter")),
    table(["rollout", "status", "step", "task", "attempts", "reward", "success", "created"], page.items.map((rollout) =>
      h("tr", {}, h("td", {}, h("a", { href: route("rollouts", rollout.id) }, shortId(rollout.id))),
        h("td", {}, badge(rollout.status)), h("td", {}, rollout.step ?? "—"), h("td", {}, tasks.get(rollout.task_id) ?? shortId(rollout.task_id)),
        h("td", {}, number(rollout.attempt_count)), h("td", {}, number(rollout.reward)),
        h("td", {}, rollout.success === null ? "—" : rollout.success ? "yes" : "no"),
        h("td", {}, ago(rollout.created_at)))), { id: "rollouts" }),
    pager(page, (at) => route("rollouts", null, { ...params, offset: at })));
}
