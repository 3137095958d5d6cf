// Resources: the snapshots workers use, newest first, the latest marked.
import { api } from "../api.js";
import { add, h, json, pager, route, time } from "../dom.js";

const LIMIT = 20;

export async function resourcesPage(container, params) {
  const offset = Number(params.offset) || 0;
  const [page, latest] = await Promise.all([
    api("/resources", { params: { sort: "updated_at", order: "desc", limit: LIMIT, offset } }),
    api("/resources/latest"),
  ]);
  add(container, h("h1", {}, "Resources"),
    page.items.length ? null : h("p", { class: "muted" }, "No resources stored."),
    h("div", { id: "resources" }, page.items.map((snapshot) => h("section", { class: "card", dataset: { id: snapshot.id } },
      h("h2", {}, snapshot.id, " ", h("span", { class: "muted" }, "version " + snapshot.version),
        latest && latest.id === snapshot.id ? h("span", { class: "badge status-running" }, "latest") : null),
      h("p", { class: "muted" }, "updated " + time(snapshot.updated_at)), json(snapshot.resources)))),
    pager(page, (at) => route("resources", null, { ...params, offset: at })));
}
