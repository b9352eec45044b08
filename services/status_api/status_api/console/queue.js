// The operator's view (#/queue): waiting and running jobs per stage, the oldest waiting
// job's age and the workers seen, from GET /v1/queue (the key's tenant), every 3 s.

import { api, explain } from "./api.js";
import { clock, h } from "./dom.js";

const STAGES = { transcription: "Transcription", notes: "Notes (LLM)" };
const POLL_MS = 3000;

export function mountQueue(root, signal) {
  const body = h("tbody");
  const updated = h("p", { class: "hint", "aria-live": "off" });
  const table = h("table", { class: "queue" },
    h("caption", { class: "visually-hidden" }, "Unfinished jobs per stage"),
    h("thead", {}, h("tr", {}, ["Stage", "Waiting", "Running", "Oldest waiting", "Workers seen"].map((name) => h("th", { scope: "col" }, name)))),
    body);
  root.replaceChildren(
    h("h1", { tabindex: "-1" }, "Queue"),
    h("p", {}, "Your unfinished jobs at each stage. Workers seen: worker processes running one of your jobs, or that took one in the last 10 minutes."),
    h("div", { class: "table-wrap" }, table), updated);
  let timer = null;
  const load = async () => {
    try {
      const view = await api("/v1/queue", { signal });
      body.replaceChildren(...view.stages.map((stage) => h("tr", {},
        h("th", { scope: "row", "data-label": "Stage" }, STAGES[stage.stage] ?? stage.stage),
        h("td", { "data-label": "Waiting" }, String(stage.waiting)),
        h("td", { "data-label": "Running" }, String(stage.running)),
        h("td", { "data-label": "Oldest waiting" }, stage.oldest_waiting_seconds === null ? "—" : clock(stage.oldest_waiting_seconds)),
        h("td", { "data-label": "Workers seen" }, String(stage.workers_seen)))));
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
    } catch (error) {
      if (signal.aborted) return;
      updated.textContent = explain(error);
    }
    if (!signal.aborted) timer = setTimeout(load, POLL_MS);
  };
  signal.addEventListener("abort", () => clearTimeout(timer));
  load();
}
