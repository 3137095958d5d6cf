// Rollout: the trajectory — turns in order (thinking, action, result), their screenshots with the action drawn on
// them (click to enlarge; before and after side by side), rewards and validation, attempts, spans as a waterfall
// and as a tree, and the status history.
import { api, artifactUrl, path } from "../api.js";
import { add, badge, duration, h, json, number, route, shortId, table, time } from "../dom.js";

const SVG = "http://www.w3.org/2000/svg";
const ROLE_ORDER = { before: 0, screenshot: 1, after: 2, attachment: 3 };

export async function rolloutPage(container, params) {
  const id = params.id;
  const [trajectory, attempts, history] = await Promise.all([
    api(`/rollouts/${path(id)}/trajectory`, { params: { attempt: params.attempt } }),
    api("/attempts", { params: { rollout_id: id, sort: "sequence", limit: 100 } }),
    api(`/history/rollout/${path(id)}`),
  ]);
  const { rollout, attempt, turns, spans } = trajectory;
  const attemptHistory = attempt ? await api(`/history/attempt/${path(attempt.id)}`) : [];
  add(container, 
    h("h1", {}, "Rollout ", h("span", { class: "mono" }, rollout.id), " ", badge(rollout.status)),
    h("dl", { class: "facts" },
      fact("run", rollout.run_id ? h("a", { href: route("runs", rollout.run_id) }, shortId(rollout.run_id)) : "—"),
      fact("step", rollout.step ?? "—"),
      fact("group", rollout.group_id ? h("a", { href: route("rollouts", null, { group: rollout.group_id }) },
                                         shortId(rollout.group_id)) : "—"),
      fact("task", shortId(rollout.task_id)), fact("mode", rollout.mode || "—"),
      fact("reward", h("span", { id: "rollout-reward" }, number(rollout.reward))),
      fact("success", rollout.success === null ? "—" : rollout.success ? "yes" : "no"),
      fact("attempts", number(rollout.attempt_count)), fact("started", time(rollout.started_at)),
      fact("ended", time(rollout.ended_at)),
      rollout.error ? fact("error", h("span", { class: "error-text" }, rollout.error)) : null,
      rollout.script_id ? fact("replays script", shortId(rollout.script_id)) : null),
    h("div", { class: "columns" },
      h("section", {}, h("h2", {}, "Validation"), json(rollout.validation)),
      h("section", {}, h("h2", {}, "Metrics"), json(rollout.metrics)),
      h("section", {}, h("h2", {}, "Input"), json(rollout.input))),
    attemptsSection(rollout, attempts.items, attempt),
    h("section", { id: "turns" }, h("h2", {}, `Turns (${turns.length})`),
      turns.length ? turns.map(turnCard) : h("p", { class: "muted" }, "No turns.")),
    spansSection(spans),
    h("section", { id: "history" }, h("h2", {}, "Status history"),
      table(["time", "of", "from", "to", "reason"], [...history.map((row) => ["rollout", row]),
                                                       ...attemptHistory.map((row) => ["attempt", row])]
        .sort((x, y) => new Date(x[1].changed_at) - new Date(y[1].changed_at))
        .map(([what, row]) => h("tr", {}, h("td", {}, time(row.changed_at)), h("td", {}, what),
          h("td", {}, row.old_status || "—"), h("td", {}, badge(row.new_status)), h("td", {}, row.reason || ""))),
        { id: "history-table" })));
  return () => closeLightbox();
}

function fact(name, value) {
  return [h("dt", {}, name), h("dd", {}, value)];
}

function attemptsSection(rollout, attempts, shown) {
  return h("section", { id: "attempts" }, h("h2", {}, "Attempts"),
    table(["#", "attempt", "status", "worker", "started", "ended", "last heartbeat"], attempts.map((attempt) =>
      h("tr", { class: shown && shown.id === attempt.id ? "shown" : null },
        h("td", {}, attempt.sequence),
        h("td", {}, h("a", { href: route("rollouts", rollout.id, { attempt: attempt.id }) }, shortId(attempt.id))),
        h("td", {}, badge(attempt.status)), h("td", {}, attempt.worker_id || "—"), h("td", {}, time(attempt.started_at)),
        h("td", {}, time(attempt.ended_at)), h("td", {}, time(attempt.last_heartbeat_at))))));
}

function text(value) {
  if (value === null || value === undefined) return null;
  return typeof value === "string" ? h("pre", { class: "text" }, value) : json(value);
}

function turnCard(turn) {
  const images = turn.artifacts.filter((artifact) => artifact.media_type.startsWith("image/"))
    .sort((a, b) => (ROLE_ORDER[a.role] ?? 9) - (ROLE_ORDER[b.role] ?? 9));
  const others = turn.artifacts.filter((artifact) => !artifact.media_type.startsWith("image/"));
  const action = turn.action;
  return h("article", { class: "turn" + (turn.error ? " failed" : ""), dataset: { turn: turn.turn_index } },
    h("header", {}, h("b", {}, `#${turn.turn_index}`), turn.kind ? h("span", { class: "kind" }, turn.kind) : null,
      turn.reward !== null ? h("span", {}, "reward " + number(turn.reward)) : null,
      turn.done ? h("span", { class: "badge" }, "done") : null,
      turn.success === null ? null : h("span", { class: turn.success ? "up" : "down" }, turn.success ? "ok" : "failed"),
      turn.duration_seconds !== null ? h("span", { class: "muted" }, duration(turn.duration_seconds)) : null),
    h("div", { class: "turn-body" },
      h("div", { class: "turn-text" },
        turn.thinking ? [h("h4", {}, "thinking"), h("pre", { class: "text thinking" }, turn.thinking)] : null,
        action !== null ? [h("h4", {}, "action"), h("div", { class: "action" }, text(action))] : null,
        turn.action_result !== null ? [h("h4", {}, "result"), h("div", { class: "result" }, text(turn.action_result))]
                                    : null,
        turn.error ? [h("h4", {}, "error"), h("pre", { class: "error-text" }, turn.error)] : null,
        turn.observation !== null ? h("details", {}, h("summary", {}, "observation"), text(turn.observation)) : null,
        turn.model_response !== null ? h("details", {}, h("summary", {}, "model response"), text(turn.model_response))
                                     : null,
        others.map((artifact) => h("div", {}, h("a", { href: artifactUrl(artifact.sha256) },
                                                `${artifact.role}: ${artifact.media_type}, ${number(artifact.size)} B`)))),
      images.length ? h("div", { class: "shots" }, images.map((artifact) => screenshot(artifact, action))) : null));
}

// A screenshot with the action's point (and a swipe's or drag's end) drawn on it in image pixels; the action
// happened on the screen shown before it, so an "after" screenshot carries no mark.
function screenshot(artifact, action) {
  const image = h("img", { src: artifactUrl(artifact.sha256), alt: artifact.role, loading: "lazy",
                           dataset: { sha256: artifact.sha256 } });
  const mark = artifact.role !== "after" && action && typeof action === "object" && typeof action.x === "number"
    && typeof action.y === "number" ? action : null;
  const figure = h("figure", { class: "shot", dataset: { role: artifact.role } },
    h("div", { class: "shot-frame" }, image), h("figcaption", {}, artifact.role));
  if (mark) {
    const overlay = document.createElementNS(SVG, "svg");
    overlay.setAttribute("class", "mark");
    overlay.setAttribute("preserveAspectRatio", "none");
    const draw = () => drawMark(overlay, mark, image.naturalWidth, image.naturalHeight);
    if (image.complete && image.naturalWidth) draw();
    else image.addEventListener("load", draw, { once: true });
    image.parentElement.appendChild(overlay);
  }
  figure.addEventListener("click", () => openLightbox(figure));
  return figure;
}

function drawMark(overlay, action, width, height) {
  overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const radius = Math.max(8, Math.min(width, height) / 30);
  const shape = (tag, attributes) => {
    const element = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
    overlay.appendChild(element);
    return element;
  };
  if (typeof action.x2 === "number" && typeof action.y2 === "number") {
    shape("line", { x1: action.x, y1: action.y, x2: action.x2, y2: action.y2, class: "mark-line",
                    "stroke-width": radius / 3 });
    shape("circle", { cx: action.x2, cy: action.y2, r: radius / 2, class: "mark-end" });
  }
  shape("circle", { cx: action.x, cy: action.y, r: radius, class: "mark-point", "stroke-width": radius / 4,
                    "data-x": action.x, "data-y": action.y });
}

let lightbox = null;
function openLightbox(figure) {
  closeLightbox();
  const copy = figure.querySelector(".shot-frame").cloneNode(true);
  lightbox = h("div", { class: "lightbox", id: "lightbox", onclick: closeLightbox }, copy,
               h("div", { class: "lightbox-caption" }, figure.dataset.role + " — click or Esc to close"));
  document.body.appendChild(lightbox);
  document.addEventListener("keydown", escape);
}

function escape(event) {
  if (event.key === "Escape") closeLightbox();
}

function closeLightbox() {
  if (lightbox) lightbox.remove();
  lightbox = null;
  document.removeEventListener("keydown", escape);
}

// Spans in tree order (each after its parent, children by start), with their depth. A span whose parent is not
// among them is a root; spans caught in a cycle of parents are shown once each, as roots.
function spanTree(spans) {
  const ids = new Set(spans.map((span) => span.span_id));
  const children = new Map();
  for (const span of spans) {
    const parent = span.parent_id && span.parent_id !== span.span_id && ids.has(span.parent_id) ? span.parent_id : null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(span);
  }
  const start = (span) => (span.start_time ? new Date(span.start_time).getTime() : 0);
  for (const list of children.values()) list.sort((a, b) => start(a) - start(b) || a.sequence_id - b.sequence_id);
  const ordered = [];
  const seen = new Set();
  const visit = (span, depth, into) => {
    if (seen.has(span)) return;
    seen.add(span);
    const node = { span, depth, children: [] };
    ordered.push(node);
    into.push(node);
    for (const child of children.get(span.span_id) || []) visit(child, depth + 1, node.children);
  };
  const roots = [];
  for (const span of [...(children.get(null) || []), ...spans]) visit(span, 0, roots);
  return { ordered, roots };
}

function spansSection(spans) {
  const section = h("section", { id: "spans" }, h("h2", {}, `Spans (${spans.length})`));
  if (!spans.length) {
    add(section, h("p", { class: "muted" }, "No spans."));
    return section;
  }
  const { ordered, roots } = spanTree(spans);
  const times = spans.flatMap((span) => [span.start_time, span.end_time]).filter(Boolean)
    .map((value) => new Date(value).getTime());
  const first = Math.min(...times);
  const total = Math.max(1, Math.max(...times) - first);
  const waterfall = h("div", { class: "waterfall", id: "waterfall" }, ordered.map(({ span, depth }) => {
    const begin = span.start_time ? new Date(span.start_time).getTime() : first;
    const end = span.end_time ? new Date(span.end_time).getTime() : begin;
    return h("div", { class: "wf-row", dataset: { span: span.span_id } },
      h("div", { class: "wf-name", style: { paddingLeft: depth * 14 + "px" }, title: span.name }, span.name),
      h("div", { class: "wf-track" },
        h("div", { class: "wf-bar", style: { left: (100 * (begin - first)) / total + "%",
                                             width: Math.max(0.3, (100 * (end - begin)) / total) + "%" } })),
      h("div", { class: "wf-time" }, duration((end - begin) / 1000)));
  }));
  const branch = (nodes) => h("ul", {}, nodes.map(({ span, children }) => h("li", { dataset: { span: span.span_id } },
    h("details", { open: true }, h("summary", {}, span.name, " ", h("span", { class: "muted" }, span.span_id)),
      h("details", {}, h("summary", { class: "muted" }, "attributes"), json(span.attributes)),
      children.length ? branch(children) : null))));
  add(section, h("h3", {}, "Waterfall"), waterfall, h("h3", {}, "Tree"), h("div", { class: "span-tree", id: "span-tree" },
                                                                           branch(roots)));
  return section;
}
