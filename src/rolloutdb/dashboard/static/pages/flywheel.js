// Flywheel: a domain's decisions per action, their reward over time, and the versions of its learned policy with
// their off-policy estimates (what the logged decisions earned, the candidate by IPS and doubly robust, the gain).
import { api } from "../api.js";
import { add, badge, h, number, progressBar, route, table, time } from "../dom.js";
import { periodChart } from "./chart.js";
import { select } from "./runs.js";

const PERIODS = ["day", "hour"];
const WINDOWS = ["", "1", "7", "30", "90"];  // the decisions taken in the last this many days ("": all of them)
const DAY_MS = 86400000;
const POLICIES_LIMIT = 50;
const DEFAULT_DOMAIN = "memory";  // built in: every project has it

export async function flywheelPage(container, params) {
  const domain = params.domain || DEFAULT_DOMAIN;
  const every = PERIODS.includes(params.every) ? params.every : "day";
  const offset = Number(params.offset) || 0;
  const days = WINDOWS.includes(params.days) ? params.days : "";
  const since = days ? new Date(Date.now() - Number(days) * DAY_MS).toISOString() : undefined;
  const [domains, periods, stats, policies] = await Promise.all([
    api("/decisions/domains"),
    api("/rewards/over-time", { params: { domain, every, since } }),
    api("/rewards/statistics", { params: { domain, since } }),
    api("/policies/list", { params: { domain, limit: POLICIES_LIMIT, offset } }),
  ]);
  const domainPicker = select("domain", domains.map((item) => item.name), domain);
  const periodPicker = select("every", PERIODS, every);
  const windowPicker = select("days", WINDOWS, days);
  for (const option of windowPicker.options) option.textContent = option.value ? `last ${option.value} d` : "all";
  const reward = rewardSection(periods, every, container.clientWidth - 40);
  add(container, h("h1", {}, "Flywheel"),
    h("form", { class: "filters", onsubmit: (event) => {
      event.preventDefault();
      location.hash = route("flywheel", null, { domain: domainPicker.value, every: periodPicker.value,
                                                days: windowPicker.value });
    } }, "domain ", domainPicker, " decisions taken ", windowPicker, " reward per ", periodPicker, " ",
    h("button", { type: "submit" }, "Show")),
    actionsSection(periods, stats, days),
    reward.element,
    policiesSection(policies, (at) => route("flywheel", null, { ...params, offset: at }), offset));
  return reward.destroy;
}

// Per action: the decisions taken, those evaluated, the mean reward; then per action and policy version, the
// rewards' statistics with their 95 % interval.
function actionsSection(periods, stats, days) {
  const actions = new Map();
  for (const row of periods) {
    const total = actions.get(row.action) || { decisions: 0, evaluated: 0, rewardSum: 0 };
    total.decisions += row.decisions;
    total.evaluated += row.evaluated;
    total.rewardSum += row.reward_mean === null ? 0 : row.reward_mean * row.evaluated;
    actions.set(row.action, total);
  }
  const all = [...actions.values()].reduce((sum, total) => sum + total.decisions, 0);
  const section = h("section", { id: "decisions" }, h("h2", {}, "Decisions per action"));
  if (!all) {
    return add(section, h("p", { class: "muted" }, `No decisions taken in this domain${days ? ` in the last ${days} d` : ""}.`));
  }
  return add(section,
    table(["action", "decisions", "share", "evaluated", "mean reward"], [...actions].map(([action, total]) =>
      h("tr", { dataset: { action } }, h("td", {}, action), h("td", { class: "decisions" }, number(total.decisions)),
        h("td", {}, progressBar(100 * total.decisions / all)), h("td", { class: "evaluated" }, number(total.evaluated)),
        h("td", { class: "reward" }, total.evaluated ? number(total.rewardSum / total.evaluated) : "—"))),
    { id: "actions" }),
    h("h3", {}, "Rewards per action and policy version"),
    table(["action", "policy version", "evaluated", "mean", "std", "95 % interval"], stats.map((row) =>
      h("tr", {}, h("td", {}, row.action), h("td", {}, row.policy_version ?? "— (none)"), h("td", {}, number(row.count)),
        h("td", {}, number(row.mean)), h("td", {}, number(row.std)),
        h("td", {}, row.ci_low === null ? "—" : `${number(row.ci_low)} to ${number(row.ci_high)}`))),
    { id: "reward-stats" }));
}

// The mean reward of each period's evaluated decisions, in all and per action: the section and what removes its chart.
function rewardSection(periods, every, width) {
  const section = h("section", { id: "reward" }, h("h2", {}, `Reward per ${every}`));
  const starts = [...new Set(periods.map((row) => row.period))].sort();
  if (!periods.some((row) => row.evaluated > 0)) {
    return { element: add(section, h("p", { class: "muted" }, "No decision has a reward yet.")), destroy: null };
  }
  const actions = [...new Set(periods.map((row) => row.action))].sort();
  const at = new Map(starts.map((start, index) => [start, index]));
  const mean = (rows) => {
    const values = starts.map(() => ({ sum: 0, count: 0 }));
    for (const row of rows) {
      if (!row.evaluated) continue;
      const value = values[at.get(row.period)];
      value.sum += row.reward_mean * row.evaluated;
      value.count += row.evaluated;
    }
    return values.map((value) => (value.count ? value.sum / value.count : null));
  };
  const series = [{ label: "all actions", values: mean(periods), width: 3 },
                  ...actions.map((action) => ({ label: action, values: mean(periods.filter((row) => row.action === action)) }))];
  const chart = periodChart(starts.map(periodStart), series, "mean reward", width);
  return { element: add(section, chart.element), destroy: chart.destroy };
}

// A period as the store names it (2026-12-05, 2026-12-05T13:00, in UTC): its start, in seconds.
function periodStart(period) {
  return Date.parse(period.length === 10 ? period + "T00:00:00Z" : period + ":00Z") / 1000;
}

function estimate(value) {
  if (!value || typeof value.value !== "number") return "—";
  return h("span", { title: `interval ${number(value.low)} to ${number(value.high)}` }, number(value.value),
    h("span", { class: "muted small" }, ` [${number(value.low)}, ${number(value.high)}]`));
}

function gain(value) {
  if (!value || typeof value.value !== "number") return "—";
  const better = value.low > 0;
  return h("span", { class: better ? "up" : value.high < 0 ? "down" : null }, estimate(value));
}

// The versions of the domain's policy, newest first, with the estimates the flywheel made of each on held-out
// decisions: the logged decisions' reward, the policy's by IPS and doubly robust, and its gain over what it was
// measured against.
function policiesSection(policies, link, offset) {
  const section = h("section", { id: "policies" }, h("h2", {}, "Policy versions"));
  if (!policies.length && !offset) return add(section, h("p", { class: "muted" }, "No policy trained yet."));
  const rows = policies.map((policy) => {
    const metrics = policy.metrics || {};
    return h("tr", { dataset: { version: policy.version }, class: policy.active ? "shown" : null },
      h("td", {}, "v" + policy.version), h("td", {}, policy.active ? badge("active") : "—"),
      h("td", {}, time(policy.created_at)),
      h("td", { class: "small" }, policy.window_start ? `${time(policy.window_start)} to ${time(policy.window_end)}` : "—"),
      h("td", {}, number(metrics.training_samples)), h("td", {}, number(metrics.holdout_samples)),
      h("td", { class: "logging" }, estimate(metrics.logging)), h("td", { class: "ips" }, estimate(metrics.ips)),
      h("td", { class: "dr" }, estimate(metrics.dr)), h("td", { class: "gain" }, gain(metrics.gain)),
      h("td", { class: "small" }, metrics.gain_over ?? "—"));
  });
  return add(section,
    h("p", { class: "muted" }, "Off-policy estimates on the held-out decisions, with their intervals in brackets."),
    table(["version", "", "trained", "on decisions taken", "trained on", "held out", "logged reward", "IPS",
           "doubly robust", "gain", "over"], rows, { id: "policy-versions" }),
    h("div", { class: "pager" },
      offset > 0 ? h("a", { href: link(Math.max(0, offset - POLICIES_LIMIT)), class: "pager-prev" }, "‹ newer") : null,
      policies.length === POLICIES_LIMIT ? h("a", { href: link(offset + POLICIES_LIMIT), class: "pager-next" },
                                             "older ›") : null));
}
