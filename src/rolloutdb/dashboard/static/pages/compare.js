// Compare: run B against run A, per task and overall, as `runs compare` does.
import { api } from "../api.js";
import { add, h, number, percent, route, signed, table } from "../dom.js";

export async function comparePage(container, params) {
  const a = h("input", { name: "a", value: params.a || "", placeholder: "run A (name or id)", size: 30 });
  const b = h("input", { name: "b", value: params.b || "", placeholder: "run B (name or id)", size: 30 });
  add(container, h("h1", {}, "Compare"),
    h("form", { class: "filters", onsubmit: (event) => {
      event.preventDefault();
      location.hash = route("compare", null, { a: a.value.trim(), b: b.value.trim() });
    } }, a, " against ", b, " ", h("button", { type: "submit" }, "Compare")));
  if (!params.a || !params.b) {
    add(container, h("p", { class: "muted" }, "Name two runs: B is compared with A (B − A)."));
    return;
  }
  const comparison = await api("/compare", { params: { a: params.a, b: params.b } });
  const stats = (side) => [h("td", {}, side ? number(side.rollouts) : "—"), h("td", {}, percent(side?.success_rate)),
                           h("td", {}, number(side?.reward_mean)), h("td", {}, number(side?.turns_mean, 2))];
  const line = (row, overall) => h("tr", { class: overall ? "overall" : null }, h("td", {}, row.task),
    stats(row.a), stats(row.b),
    h("td", { class: delta(row.success_rate_delta) }, signed(row.success_rate_delta, true)),
    h("td", { class: delta(row.reward_mean_delta) }, signed(row.reward_mean_delta)),
    h("td", {}, signed(row.turns_mean_delta)));
  add(container, 
    h("p", {}, "A: ", h("a", { href: route("runs", comparison.run_a.name), id: "run-a" }, comparison.run_a.name),
      " · B: ", h("a", { href: route("runs", comparison.run_b.name), id: "run-b" }, comparison.run_b.name)),
    table(["task", "A rollouts", "A success", "A reward", "A turns", "B rollouts", "B success", "B reward", "B turns",
           "Δ success", "Δ reward", "Δ turns"],
          [line(comparison.overall, true), ...comparison.tasks.map((row) => line(row, false))], { id: "comparison" }));
}

function delta(value) {
  return value === null || value === undefined || value === 0 ? null : value > 0 ? "up" : "down";
}
