// Building the page: every value from the data becomes text (a text node or textContent), never markup.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "style" && typeof value === "object") Object.assign(element.style, value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "href") element.setAttribute("href", safeHref(value));
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

// Append children as h() takes them (text, nodes, arrays; null and false skipped), unlike Element.append,
// which writes "null".
export function add(element, ...children) {
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else if (child instanceof Node) element.appendChild(child);
    else element.appendChild(document.createTextNode(String(child)));
  }
}

// Links are the dashboard's own routes (#/...) or its own API paths: anything else (javascript:) is dropped.
function safeHref(value) {
  const text = String(value);
  return text.startsWith("#/") || text.startsWith("/api/v1/") ? text : "#/";
}

export function clear(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

// A route's link: #/page/<id>?key=value, each part encoded.
export function route(page, id, params) {
  let hash = "#/" + page + (id === undefined || id === null ? "" : "/" + encodeURIComponent(id));
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const text = query.toString();
  return text ? hash + "?" + text : hash;
}

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

export function table(headers, rows, attributes = {}) {
  return h("table", attributes,
    h("thead", {}, h("tr", {}, headers.map((header) => h("th", {}, header)))),
    h("tbody", {}, rows));
}

export function badge(status) {
  return h("span", { class: "badge status-" + String(status).replace(/[^a-z_]/g, "") }, status ?? "—");
}

export function progressBar(percent) {
  const value = Math.max(0, Math.min(100, Number(percent) || 0));
  return h("div", { class: "bar", role: "progressbar", "aria-valuenow": value.toFixed(1),
                    "aria-valuemin": "0", "aria-valuemax": "100" },
    h("div", { class: "fill", style: { width: value + "%" } }),
    h("span", { class: "bar-text" }, value.toFixed(1) + " %"));
}

export function setProgress(bar, percent) {
  const value = Math.max(0, Math.min(100, Number(percent) || 0));
  bar.setAttribute("aria-valuenow", value.toFixed(1));
  bar.querySelector(".fill").style.width = value + "%";
  bar.querySelector(".bar-text").textContent = value.toFixed(1) + " %";
}

export function time(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return date.toISOString().replace("T", " ").slice(0, 19);
}

export function ago(iso) {
  if (!iso) return "—";
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  return duration(Math.max(0, seconds)) + " ago";
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "—";
  if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s";
  if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.round((seconds % 3600) / 60) + " min";
  return Math.floor(seconds / 86400) + " d " + Math.round((seconds % 86400) / 3600) + " h";
}

// Progress seen move on this page, by run: [milliseconds, percent], the last minute of it.
const PACE_WINDOW_MS = 60000;
const seen = new Map();

// A running run's time left: at the pace its progress moved while the page watched it, or before that, at
// its pace since it started (a plan's first stage may jump ahead of the rest).
export function eta(run) {
  if (run.status !== "running" || !run.started_at || !(run.progress > 0) || run.progress >= 100) return "—";
  const now = Date.now();
  const samples = seen.get(run.id) || [];
  if (!samples.length || samples[samples.length - 1][1] !== run.progress) samples.push([now, run.progress]);
  while (samples.length > 2 && now - samples[1][0] > PACE_WINDOW_MS) samples.shift();
  seen.set(run.id, samples);
  const [[firstTime, firstProgress], [lastTime, lastProgress]] = [samples[0], samples[samples.length - 1]];
  if (lastProgress > firstProgress && lastTime - firstTime >= 2000) {
    const perSecond = (lastProgress - firstProgress) / ((lastTime - firstTime) / 1000);
    return duration((100 - run.progress) / perSecond);
  }
  const elapsed = (now - new Date(run.started_at).getTime()) / 1000;
  return duration(elapsed * (100 - run.progress) / run.progress);
}

export function number(value, digits = 3) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? value.toLocaleString("en-US") : value.toFixed(digits);
}

export function percent(value) {
  return value === null || value === undefined ? "—" : (100 * value).toFixed(1) + " %";
}

export function signed(value, asPercent = false) {
  if (value === null || value === undefined) return "—";
  const text = asPercent ? (100 * value).toFixed(1) + " pp" : value.toFixed(3);
  return value > 0 ? "+" + text : text;
}

// Ids made in time order share their start: the end tells them apart.
export function shortId(id) {
  if (!id) return "—";
  const text = String(id);
  return text.length > 12 ? "…" + text.slice(-10) : text;
}

export function errorBox(error) {
  return h("div", { class: "error" }, error && error.message ? error.message : String(error));
}

// One page of a listing: where it is, and links to the pages before and after it.
export function pager(page, link) {
  const { total, limit, offset } = page;
  const last = Math.min(offset + page.items.length, total);
  return h("div", { class: "pager" },
    h("span", { class: "pager-where" },
      total ? `${(offset + 1).toLocaleString("en-US")}–${last.toLocaleString("en-US")} of ${total.toLocaleString("en-US")}`
            : "none"),
    offset > 0 ? h("a", { href: link(Math.max(0, offset - limit)), class: "pager-prev" }, "‹ previous") : null,
    last < total ? h("a", { href: link(offset + limit), class: "pager-next" }, "next ›") : null);
}
