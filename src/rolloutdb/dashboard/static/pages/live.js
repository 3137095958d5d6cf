// The badge that says whether a page's event stream is up.
import { h } from "../dom.js";

export function liveBadge() {
  const element = h("span", { class: "live off", title: "live updates" }, "connecting");
  return {
    element,
    set(open, problem) {
      element.className = open ? "live on" : "live off";
      element.textContent = open ? "live" : problem ? "stopped" : "reconnecting";
      if (problem) element.title = problem;
    },
  };
}
