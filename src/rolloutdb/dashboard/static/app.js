// The dashboard's shell: who is logged in, the navigation, and the router (#/page/<id>?params: stable URLs).
import { api, ApiError, login, logout, token } from "./api.js";
import { clear, errorBox, h } from "./dom.js";
// Each page's module is loaded when it is first shown (the charts' library only with a run's page).
const PAGES = {
  runs: { title: "Runs", list: ["./pages/runs.js", "runsPage"], one: ["./pages/run.js", "runPage"] },
  queue: { title: "Queue and workers", list: ["./pages/queue.js", "queuePage"] },
  compare: { title: "Compare", list: ["./pages/compare.js", "comparePage"] },
  rollouts: { title: "Rollouts", list: ["./pages/rollouts.js", "rolloutsPage"],
              one: ["./pages/rollout.js", "rolloutPage"] },
  scripts: { title: "Scripts", list: ["./pages/scripts.js", "scriptsPage"] },
  resources: { title: "Resources", list: ["./pages/resources.js", "resourcesPage"] },
};

// The module and function that show a route: a page's one-row view when the route names a row.
function viewOf({ page, id }) {
  const entry = PAGES[page] || PAGES.runs;
  return id !== null && entry.one ? entry.one : entry.list;
}

async function load([module, name]) {
  return (await import(module))[name];
}

// What the pages share: the project and the role of the token (null: a server without --auth).
export const session = { project: null, role: null, canControl: false };
let cleanup = null;
let generation = 0;  // the render under way: an older one still loading leaves the page to it

function parseHash() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [where, search = ""] = hash.split("?");
  const [page, ...rest] = where.split("/");
  const id = rest.length ? decodeURIComponent(rest.join("/")) : null;
  return { page: page || "runs", id, params: Object.fromEntries(new URLSearchParams(search)) };
}

function navigation(current) {
  return Object.entries(PAGES).map(([name, page]) =>
    h("a", { href: "#/" + name, class: name === current ? "active" : null }, page.title));
}

// Asked at once, while the first page's module loads.
let asking = api("/project");

async function start() {
  try {
    const project = await asking;
    session.project = project.name;
    session.role = project.role;
    session.canControl = project.role === null || project.role === "writer" || project.role === "admin";
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return showLogin(error);
    clear(document.getElementById("main"), errorBox(error));
    return;
  }
  clear(document.getElementById("who"),
    h("span", { class: "project" }, "project ", h("b", {}, session.project)),
    session.role ? h("span", { class: "role" }, session.role) : null,
    token() ? h("button", { class: "link", id: "logout", onclick: () => { logout(); location.reload(); } }, "log out")
            : null);
  window.addEventListener("hashchange", render);
  render();
}

function showLogin(error) {
  clear(document.getElementById("nav"));
  const input = h("input", { type: "password", id: "token", placeholder: "rdb_…", autocomplete: "off", size: 50 });
  const message = h("div", { class: "error", id: "login-error" }, token() ? error.message : null);
  const form = h("form", { id: "login", onsubmit: (event) => {
    event.preventDefault();
    try {
      login(input.value);
    } catch (problem) {
      message.textContent = problem.message;
      return;
    }
    asking = api("/project");
    start();
  } },
  h("h1", {}, "Log in"),
  h("p", {}, "This server asks for an API token (", h("code", {}, "rolloutdb tokens create"),
    "). It is kept in this tab only."),
  input, " ", h("button", { type: "submit" }, "Log in"), message);
  if (!token()) message.replaceChildren();
  else logout();
  clear(document.getElementById("main"), form);
  input.focus();
}

async function render() {
  if (cleanup) { try { cleanup(); } catch { /* the page is gone anyway */ } }
  cleanup = null;
  const { page, id, params } = parseHash();
  const entry = PAGES[page] || PAGES.runs;
  clear(document.getElementById("nav"), navigation(PAGES[page] ? page : "runs"));
  const container = h("div", { class: "page", id: "page-" + (PAGES[page] ? page : "runs") });
  clear(document.getElementById("main"), container);
  const module = load(viewOf({ page, id }));
  document.title = `${entry.title} · RolloutDB`;
  const done = document.body.dataset;
  delete done.ready;
  const mine = ++generation;
  let stop = null;
  try {
    const view = await module;
    stop = (await view(container, id === null ? params : { ...params, id }, session)) || null;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return showLogin(error);
    container.appendChild(errorBox(error));
  }
  if (mine !== generation) { if (stop) stop(); return; }
  cleanup = stop;
  done.ready = location.hash || "#/runs";  // tests and the benchmark wait for it
  performance.mark("rolloutdb:ready");  // when the page's content is shown, for benchmarks/dashboard.py
}

load(viewOf(parseHash())).catch(() => {});  // the first page's module, fetched while the project is asked for
start();
