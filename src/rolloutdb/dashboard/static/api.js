// The REST API (/api/v1) and its event stream, with the API token the person logged in with.

const API = "/api/v1";
const TOKEN_KEY = "rolloutdb.token";
// What the browser fetches by itself (an image, the event stream) cannot carry a header: the server takes this
// cookie for reads instead (never a URL parameter, which would end up in its log).
const TOKEN_COOKIE = "rolloutdb_token";
const TOKEN_SHAPE = /^[A-Za-z0-9_.~-]+$/;

export class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function login(secret) {
  const text = secret.trim();
  if (!TOKEN_SHAPE.test(text)) throw new ApiError(0, "InvalidInputError", "that is not an API token (rdb_…)");
  sessionStorage.setItem(TOKEN_KEY, text);
  setCookie(text);
}

export function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
  document.cookie = `${TOKEN_COOKIE}=; path=${API}; SameSite=Strict; max-age=0`;
}

function setCookie(secret) {
  document.cookie = `${TOKEN_COOKIE}=${secret}; path=${API}; SameSite=Strict`;
}

// The cookie lives as long as the browser; the token as long as the tab: the tab's token wins.
if (token()) setCookie(token());

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((item) => search.append(key, item));
    else search.set(key, value);
  }
  const text = search.toString();
  return text ? "?" + text : "";
}

export async function api(path, { method = "GET", params, body } = {}) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = "Bearer " + token();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path + query(params), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const text = await response.text();
  let answer = null;
  try { answer = text ? JSON.parse(text) : null; } catch { answer = null; }
  if (!response.ok) {
    const error = answer && answer.error ? answer.error : { type: "HTTPError", message: text || response.statusText };
    throw new ApiError(response.status, error.type, `${error.type}: ${error.message}`);
  }
  return answer;
}

export function path(...parts) {
  return parts.map((part) => encodeURIComponent(part)).join("/");
}

export function artifactUrl(sha256) {
  return `${API}/artifacts/${encodeURIComponent(sha256)}/content`;
}

// Follow the server's events: handlers by topic (job, log, run, step, group, rollout, attempt, queue), each
// given the event's JSON. EventSource reconnects by itself after the last id it had (Last-Event-ID).
// onState(open: bool) tells whether the stream is up. Returns the function that stops following.
export function follow({ topics, run } = {}, handlers = {}, onState = () => {}) {
  const source = new EventSource(API + "/events" + query({ topic: topics, run }));
  for (const [topic, handler] of Object.entries(handlers)) {
    source.addEventListener(topic, (message) => handler(JSON.parse(message.data)));
  }
  source.addEventListener("open", () => onState(true));
  source.addEventListener("error", (message) => {
    onState(false);
    if (message.data) {  // the server's last word (the token revoked, the feed trimmed): not retried
      source.close();
      const error = JSON.parse(message.data).error;
      onState(false, `${error.type}: ${error.message}`);
    }
  });
  return () => source.close();
}

// The external ids of tasks by id (a listing shows "reach-7", not an id), in one request.
export async function taskNames(ids) {
  const wanted = [...new Set(ids.filter(Boolean))];
  if (!wanted.length) return new Map();
  const page = await api("/tasks", { params: { filters: JSON.stringify({ id__in: wanted }), limit: wanted.length } });
  return new Map(page.items.map((task) => [task.id, task.external_id]));
}
