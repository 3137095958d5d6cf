// Run: its status and progress (live), step metrics as a chart, groups per step, evals against the baseline per
// task, its config, and for a job its controls (writers only) and its log as it is written.
import { api, follow, path, taskNames } from "../api.js";
import { add, badge, clear, errorBox, eta, h, json, number, pager, percent, progressBar, route, setProgress, shortId,
         table, time } from "../dom.js";
import { metricNames, stepChart } from "./chart.js";
import { liveBadge } from "./live.js";

const GROUPS_LIMIT = 50;
const LOG_ROWS = 200;
const STEPS_CHARTED = 10000;  // the latest ones: a long run's chart shows where it is now, not where it began

const EVALS_SHOWN = 5;  // the latest: a column each, so that the table fits and the page asks for few comparisons

// The run's latest steps (STEPS_CHARTED at most), oldest first, and how many it has.
async function latestSteps(run) {
  const page = await api("/steps", { params: { run_id: run.id, sort: "number", order: "desc", limit: STEPS_CHARTED } });
  return { items: page.items.reverse(), total: page.total };
}

// The run's baseline (its first, or null) and its latest eval runs (EVALS_SHOWN at most, oldest first), and how many
// eval runs it has.
async function evalRuns(run) {
  const [baselines, evals] = await Promise.all([
    api("/runs", { params: { parent_run_id: run.id, kind: "baseline", sort: "created_at", limit: 1 } }),
    api("/runs", { params: { parent_run_id: run.id, kind: "eval", sort: "created_at", order: "desc",
                             limit: EVALS_SHOWN } }),
  ]);
  return { baseline: baselines.items[0] || null, evals: evals.items.reverse(), total: evals.total };
}

export async function runPage(container, params, knowing) {
  const [run, session] = await Promise.all([api("/runs/" + path(params.id)), knowing]);
  const [steps, children] = await Promise.all([latestSteps(run), evalRuns(run)]);
  const live = liveBadge();
  const status = h("span", { id: "run-status" }, badge(run.status));
  const stage = h("span", { id: "run-stage" }, run.stage || "—");
  const bar = progressBar(run.progress);
  bar.id = "run-progress";
  const etaText = h("span", { id: "run-eta" }, eta(run));
  const message = h("span", { id: "run-message" }, run.message || "");
  const controls = session.canControl ? jobControls(run) : null;
  add(container, 
    h("h1", {}, h("span", { class: "run-name" }, run.name), " ", live.element),
    h("dl", { class: "facts" },
      fact("kind", run.kind), fact("status", status), fact("stage", stage), fact("progress", bar),
      fact("ETA", etaText), fact("message", message),
      run.error ? fact("error", h("span", { class: "error-text" }, run.error)) : null,
      run.parent_run_id ? fact("parent", h("a", { href: route("runs", run.parent_run_id) }, shortId(run.parent_run_id)))
                        : null,
      fact("started", time(run.started_at)), fact("ended", time(run.ended_at)),
      fact("rollouts", h("a", { href: route("rollouts", null, { run: run.id }) }, "list"))),
    controls ? controls.element : null);

  const chartSection = h("section", { id: "metrics" });
  let chart = null;
  const drawChart = ({ items: list, total }, metric) => {
    if (chart) chart.destroy();
    chart = null;
    const names = metricNames(list);
    if (!names.length) return clear(chartSection, h("h2", {}, "Step metrics"), h("p", { class: "muted" }, "No steps."));
    const chosen = names.includes(metric) ? metric : names[0];
    const picker = h("select", { id: "metric", onchange: () => {
      location.hash = route("runs", run.name, { ...params, id: undefined, metric: picker.value });
    } }, names.map((name) => h("option", { value: name, selected: name === chosen }, name)));
    chart = stepChart(list, chosen, container.clientWidth - 40);
    const shown = list.length < total
      ? h("p", { class: "muted", id: "metrics-shown" },
          `The last ${number(list.length)} of ${number(total)} steps (from step ${list[0].number}).`) : null;
    clear(chartSection, h("h2", {}, "Step metrics ", picker), shown, chart.element);
  };
  drawChart(steps, params.metric);
  add(container, chartSection);

  if (steps.items.length) add(container, await groupsSection(run, steps.items, params));
  if (children.baseline || children.evals.length) add(container, await evalsSection(children));
  add(container, h("section", {}, h("h2", {}, "Config"), json(run.config)));
  const log = await logSection(run);
  add(container, log.element);

  let stepsPending = false;
  const stop = follow({ topics: ["job", "log", "run", "step"], run: run.id }, {
    job: (event) => {
      Object.assign(run, Object.fromEntries(Object.entries(event.data).filter(([, v]) => v !== null)));
      showRun();
    },
    log: (event) => log.add(event.data, event.time),
    run: () => api("/runs/" + path(run.id)).then((fresh) => { Object.assign(run, fresh); showRun(); }),
    step: () => {
      if (stepsPending) return;
      stepsPending = true;
      setTimeout(async () => {
        stepsPending = false;
        drawChart(await latestSteps(run), document.getElementById("metric")?.value || params.metric);
      }, 1000);
    },
  }, live.set);
  function showRun() {
    status.replaceChildren(badge(run.status));
    stage.textContent = run.stage || "—";
    setProgress(bar, run.progress);
    etaText.textContent = eta(run);
    message.textContent = run.message || "";
    if (controls) controls.show(run);
  }
  const ticking = setInterval(() => { etaText.textContent = eta(run); }, 5000);
  return () => { stop(); clearInterval(ticking); if (chart) chart.destroy(); };
}

function fact(name, value) {
  return [h("dt", {}, name), h("dd", {}, value ?? "—")];
}

// Pause, resume, cancel: requests the job's process takes up at its next checkpoint.
function jobControls(run) {
  const result = h("span", { class: "control-result", id: "control-result" });
  const button = (action, label) => h("button", { id: "job-" + action, onclick: async () => {
    result.textContent = "…";
    try {
      const changed = await api(`/jobs/${path(run.id)}/${action}`, { method: "POST",
                                                                    body: { reason: "from the dashboard" } });
      result.textContent = `${action} requested`;
      Object.assign(run, changed);
      show(run);
    } catch (error) {
      result.textContent = error.message;
    }
  } }, label);
  const buttons = { pause: button("pause", "Pause"), resume: button("resume", "Resume"), cancel: button("cancel", "Cancel") };
  const show = (current) => {
    const active = ["pending", "running"].includes(current.status);
    buttons.pause.disabled = !(current.status === "running" && current.control !== "pause");
    buttons.resume.disabled = current.status !== "paused";
    buttons.cancel.disabled = !(active || current.status === "paused");
  };
  show(run);
  return { element: h("div", { class: "controls", id: "job-controls" }, buttons.pause, buttons.resume, buttons.cancel,
                      " ", result), show };
}

async function groupsSection(run, steps, params) {
  const numbers = steps.map((step) => step.number);
  const chosen = params.step !== undefined && numbers.includes(Number(params.step)) ? Number(params.step)
                                                                                    : numbers[numbers.length - 1];
  const offset = Number(params.goffset) || 0;
  const page = await api("/groups", { params: { run_id: run.id, step: chosen, sort: "created_at", limit: GROUPS_LIMIT,
                                                offset } });
  const tasks = await taskNames(page.items.map((group) => group.task_id));
  const picker = h("select", { id: "group-step", onchange: () => {
    location.hash = route("runs", run.name, { ...params, id: undefined, step: picker.value, goffset: undefined });
  } }, numbers.map((n) => h("option", { value: n, selected: n === chosen }, "step " + n)));
  const rows = page.items.map((group) => h("tr", {},
    h("td", {}, h("a", { href: route("rollouts", null, { group: group.id }) }, shortId(group.id))),
    h("td", {}, tasks.get(group.task_id) ?? shortId(group.task_id)), h("td", {}, badge(group.status)),
    h("td", {}, number(group.rollout_count)), h("td", {}, number(group.completed_count)),
    h("td", {}, number(group.success_count)),
    h("td", {}, group.reward_mean === null ? "—" : `${number(group.reward_mean)} ± ${number(group.reward_std)}`)));
  return h("section", { id: "groups" }, h("h2", {}, "Groups of ", picker),
    table(["group", "task", "status", "rollouts", "finished", "successes", "reward (mean ± std)"], rows),
    pager(page, (at) => route("runs", run.name, { ...params, id: undefined, step: chosen, goffset: at })));
}

// The eval runs against the baseline, task by task (as `runs compare` does for each pair).
async function evalsSection({ baseline, evals, total }) {
  const section = h("section", { id: "evals" }, h("h2", {}, "Evals against the baseline"));
  if (!baseline || !evals.length) {
    add(section, h("p", { class: "muted" }, baseline ? "No eval runs yet." : "No baseline run."),
      table(["run", "kind", "status"], [baseline, ...evals].filter(Boolean).map((child) => h("tr", {},
        h("td", {}, h("a", { href: route("runs", child.name) }, child.name)), h("td", {}, child.kind),
        h("td", {}, badge(child.status))))));
    return section;
  }
  let comparisons;
  try {
    comparisons = await Promise.all(evals.map((child) => api("/compare", { params: { a: baseline.id, b: child.id } })));
  } catch (error) {
    add(section, errorBox(error));
    return section;
  }
  const tasks = new Map([["(overall)", null]]);
  comparisons.forEach((comparison) => comparison.tasks.forEach((row) => tasks.set(row.task, row.task_id)));
  const cell = (comparison, task) => {
    const row = task === "(overall)" ? comparison.overall : comparison.tasks.find((item) => item.task === task);
    return row;
  };
  const rows = [...tasks.keys()].map((task) => {
    const base = cell(comparisons[0], task);
    return h("tr", { class: task === "(overall)" ? "overall" : null }, h("td", {}, task),
      h("td", {}, percent(base?.a?.success_rate)),
      comparisons.map((comparison) => {
        const row = cell(comparison, task);
        return h("td", {}, percent(row?.b?.success_rate),
          row?.success_rate_delta === null || row?.success_rate_delta === undefined ? null
            : h("span", { class: row.success_rate_delta >= 0 ? "up" : "down" },
                ` (${row.success_rate_delta >= 0 ? "+" : ""}${(100 * row.success_rate_delta).toFixed(1)} pp)`));
      }));
  });
  add(section, h("p", { class: "muted", id: "evals-shown" }, "Success rate per task; in brackets, the change from the "
                  + (total > evals.length ? `baseline. The latest ${evals.length} of ${number(total)} eval runs.` : "baseline.")),
    table(["task", h("a", { href: route("runs", baseline.name) }, baseline.name),
           ...evals.map((child) => h("a", { href: route("compare", null, { a: baseline.name, b: child.name }) },
                                     child.name))], rows, { id: "evals-table" }));
  return section;
}

async function logSection(run) {
  let rows = [];
  try {
    rows = await api(`/jobs/${path(run.id)}/logs`, { params: { limit: LOG_ROWS } });
  } catch (error) {
    return { element: h("section", {}, h("h2", {}, "Log"), errorBox(error)), add: () => {} };
  }
  const body = h("tbody", {});
  const list = h("table", { id: "job-log", class: "log" }, body);
  const add = (row, when) => {
    body.append(h("tr", { class: "level-" + (row.level || "info") }, h("td", {}, time(row.time || when)),
      h("td", {}, row.level || ""), h("td", {}, row.stage || ""),
      h("td", {}, row.progress === null || row.progress === undefined ? "" : row.progress.toFixed(1) + " %"),
      h("td", {}, row.message || (row.data ? JSON.stringify(row.data) : ""))));
    while (body.children.length > 2 * LOG_ROWS) body.firstChild.remove();
    if (list.parentElement) list.parentElement.scrollTop = list.parentElement.scrollHeight;
  };
  rows.forEach((row) => add(row));
  return { element: h("section", {}, h("h2", {}, "Log"), h("div", { class: "log-box" }, list)), add };
}
