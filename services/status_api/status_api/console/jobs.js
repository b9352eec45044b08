// The jobs table: newest first, filtered by status, a page at a time ("More"). While any
// listed job is unfinished it polls GET /v1/jobs every two seconds: a stream per row would
// use up the six connections a browser opens to one host (only a job's page streams).

import { api, explain } from "./api.js";
import { age, announce, clock, FINISHED, h, uid } from "./dom.js";

const STATUSES = ["queued", "transcribing", "transcribed", "generating", "completed", "failed", "canceled"];
const PAGE = 20;
const POLL_MS = 2000;

/** Cancel or delete a job, asking first before a delete; true once done. */
export async function act(job, action) {
  const name = job.source.filename ?? job.id;
  if (action === "delete" && !confirm(`Delete ${name}, its transcript and notes? This cannot be undone.`)) return false;
  try {
    const path = `/v1/jobs/${job.id}`;
    await (action === "cancel" ? api(`${path}/cancel`, { method: "POST" }) : api(path, { method: "DELETE" }));
    announce(action === "cancel" ? `${name} was canceled.` : `${name} was deleted.`);
    return true;
  } catch (error) {
    announce(explain(error), "error");
    return false;
  }
}

/** Fill `root` with the jobs table; returns `refresh()`, to call after an upload. */
export function mountJobs(root, signal) {
  const heading = uid("jobs");
  const filterId = uid("status-filter");
  const filter = h("select", { id: filterId }, h("option", { value: "" }, "All"), STATUSES.map((s) => h("option", { value: s }, s)));
  const body = h("tbody");
  const empty = h("p", { class: "hint", hidden: true }, "No jobs yet: upload a recording above.");
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "More");
  const table = h("table", { class: "jobs" },
    h("caption", { class: "visually-hidden" }, "Your jobs, newest first"),
    h("thead", {}, h("tr", {}, ["File", "Status", "Progress", "Duration", "Age", "Actions"].map((name) => h("th", { scope: "col" }, name)))),
    body);
  let items = [];
  let cursor = null;
  let timer = null;
  const rows = new Map(); // job id -> row, updated in place so that focus stays where it is

  const row = (job) => {
    let tr = rows.get(job.id);
    const name = job.source.filename ?? job.id;
    if (!tr) {
      const cancel = h("button", { type: "button", class: "small secondary", "aria-label": `Cancel ${name}` }, "Cancel");
      const remove = h("button", { type: "button", class: "small danger", "aria-label": `Delete ${name}` }, "Delete");
      cancel.addEventListener("click", async () => (await act(rows.get(job.id).job, "cancel")) && refresh());
      remove.addEventListener("click", async () => (await act(rows.get(job.id).job, "delete")) && refresh());
      tr = h("tr", {},
        h("td", { "data-label": "File" }, h("a", { href: `#/jobs/${job.id}` }, name)),
        h("td", { "data-label": "Status" }, h("span", { class: "badge" })),
        h("td", { "data-label": "Progress" }, h("progress", { max: 100, "aria-label": `Progress of ${name}` }), h("span", { class: "pct" })),
        h("td", { "data-label": "Duration" }, clock(job.source.duration_seconds)),
        h("td", { "data-label": "Age" }, h("time", { datetime: job.created_at })),
        h("td", { "data-label": "Actions", class: "actions" }, cancel, remove));
      tr.cancel = cancel;
      rows.set(job.id, tr);
    }
    tr.job = job;
    const badge = tr.querySelector(".badge");
    badge.textContent = job.status;
    badge.dataset.status = job.status;
    const done = job.status === "completed";
    tr.querySelector("progress").value = done ? 100 : job.progress;
    tr.querySelector(".pct").textContent = `${done ? 100 : job.progress}%`;
    tr.querySelector("time").textContent = age(job.created_at);
    tr.cancel.hidden = FINISHED.has(job.status);
    return tr;
  };

  const render = () => {
    const wanted = items.map(row);
    const ids = new Set(items.map((job) => job.id));
    for (const [id, tr] of rows) if (!ids.has(id)) { tr.remove(); rows.delete(id); }
    // Only rows out of place move (moving a row would take the focus from its buttons).
    wanted.forEach((tr, i) => { if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] ?? null); });
    empty.hidden = items.length > 0;
    table.hidden = items.length === 0;
    more.hidden = cursor === null;
  };

  const query = (limit, after) => {
    const params = new URLSearchParams({ limit: String(limit) });
    if (filter.value) params.set("status", filter.value);
    if (after) params.set("cursor", after);
    return api(`/v1/jobs?${params}`, { signal });
  };

  const schedule = () => {
    clearTimeout(timer);
    if (!signal.aborted && items.some((job) => !FINISHED.has(job.status))) timer = setTimeout(refresh, POLL_MS);
  };

  // The first pages again (as many jobs as are shown, up to the API's 100 a page).
  async function refresh() {
    try {
      const shown = Math.min(100, Math.max(PAGE, items.length));
      const page = await query(shown);
      items = [...page.items, ...items.slice(shown).filter((job) => !page.items.some((p) => p.id === job.id))];
      if (items.length <= shown) cursor = page.next_cursor;
      render();
    } catch (error) {
      if (signal.aborted) return;
      announce(explain(error), "error");
    }
    schedule();
  }

  more.addEventListener("click", async () => {
    try {
      const page = await query(PAGE, cursor);
      items = [...items, ...page.items];
      cursor = page.next_cursor;
      render();
      schedule();
    } catch (error) {
      announce(explain(error), "error");
    }
  });
  filter.addEventListener("change", () => {
    items = [];
    cursor = null;
    refresh();
  });
  // Ages move on between polls too (no request: the rows are redrawn from what is known).
  const ages = setInterval(() => items.forEach(row), 15_000);
  signal.addEventListener("abort", () => { clearTimeout(timer); clearInterval(ages); });

  root.replaceChildren(
    h("div", { class: "section-head" },
      h("h2", { id: heading }, "Jobs"),
      h("div", { class: "field inline" }, h("label", { for: filterId }, "Status"), filter)),
    empty, h("div", { class: "table-wrap" }, table), more);
  root.setAttribute("aria-labelledby", heading);
  refresh();
  return refresh;
}
