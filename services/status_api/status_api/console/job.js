// A job's page (#/jobs/<id>, optionally ?t=<seconds> to start the player there): the
// recording, the transcript, the notes and the timeline. While the job runs, its live
// stream updates the page; this is the only stream the console opens.

import { api, explain } from "./api.js";
import { announce, clock, dollars, FINISHED, h, title, uid, when } from "./dom.js";
import { act } from "./jobs.js";
import { renderMarkdown } from "./markdown.js";
import { followJob } from "./sse.js";
import { Transcript } from "./transcript.js";

function notFound(root, id) {
  root.replaceChildren(
    h("h1", { tabindex: "-1" }, "Job not found"),
    h("p", {}, `No job ${id} exists for this API key: it may have been deleted, or it belongs to someone else.`),
    h("p", {}, h("a", { href: "#/" }, "Back to your jobs")));
}

function noteView(note) {
  const usage = note.usage ?? {};
  const meta = [`${note.provider} / ${note.model}`, `${usage.tokens_in ?? 0} tokens in, ${usage.tokens_out ?? 0} out`, dollars(usage.cost_usd)];
  if (note.cached) meta.push("from the cache");
  return h("article", { class: "note", dataset: { task: note.task } },
    h("h3", {}, title(note.task)),
    h("p", { class: "hint" }, meta.join(" · ")),
    h("div", { class: "markdown" }, renderMarkdown(note.output, 4)));
}

function eventView(event) {
  const from = event.from_status ?? event.from;
  const to = event.to_status ?? event.to;
  const detail = event.detail?.error ?? event.detail?.reason ?? "";
  return h("li", {},
    h("time", { datetime: event.at }, when(event.at)), " ",
    from ? `${from} → ${to}` : to,
    event.actor ? h("span", { class: "hint" }, ` by ${event.actor}`) : null,
    detail ? h("span", { class: "hint" }, ` (${typeof detail === "string" ? detail : JSON.stringify(detail)})`) : null);
}

/** Fill `root` with job `id`'s page; `params.get("t")` seeks the player. */
export async function mountJob(root, id, params, signal) {
  let job;
  try {
    job = await api(`/v1/jobs/${encodeURIComponent(id)}`, { signal });
  } catch (error) {
    if (signal.aborted) return;
    if (error.status === 404) return notFound(root, id);
    root.replaceChildren(h("h1", { tabindex: "-1" }, "Job"), h("p", { class: "error" }, explain(error)));
    return;
  }
  const name = job.source.filename ?? job.id;
  document.title = `${name} · Voxflow`;
  const transcript = new Transcript(job, uid("transcript"));
  signal.addEventListener("abort", () => transcript.release());

  const badge = h("span", { class: "badge" });
  const bar = h("progress", { max: 100, "aria-label": "Progress" });
  const pct = h("span", { class: "pct" });
  const error = h("p", { class: "error", hidden: true });
  const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
  const remove = h("button", { type: "button", class: "danger" }, "Delete");
  const notesHeading = uid("notes");
  const notes = h("div", { class: "notes" });
  const notesEmpty = h("p", { class: "hint" }, "No notes.");
  const totals = h("p", { class: "hint" });
  const timelineHeading = uid("timeline");
  const timeline = h("ol", { class: "timeline" });

  const show = (current) => {
    job = { ...job, ...current };
    badge.textContent = job.status;
    badge.dataset.status = job.status;
    const progress = job.status === "completed" ? 100 : job.progress;
    bar.value = progress;
    pct.textContent = `${progress}%`;
    cancel.hidden = FINISHED.has(job.status);
    error.hidden = !job.error;
    if (job.error) error.textContent = `${job.error.code}: ${job.error.message}`;
  };
  const noteViews = new Map();
  const addNote = (note) => {
    const view = noteView(note);
    noteViews.get(note.task)?.replaceWith(view) ?? notes.append(view);
    noteViews.set(note.task, view);
    notesEmpty.hidden = true;
  };
  const loadResults = async () => {
    try {
      const results = await api(`/v1/jobs/${job.id}/results`, { signal });
      results.results.forEach(addNote);
      const t = results.totals;
      totals.textContent = t.calls ? `${t.calls} LLM call${t.calls > 1 ? "s" : ""}: ${t.tokens_in} tokens in, ${t.tokens_out} out, ${dollars(t.cost_usd)}` : "";
    } catch (failure) {
      if (!signal.aborted) announce(explain(failure), "error");
    }
  };
  const loadTimeline = async () => {
    try {
      const events = await api(`/v1/jobs/${job.id}/events`, { signal });
      timeline.replaceChildren(...events.map(eventView));
    } catch (failure) {
      if (!signal.aborted) announce(explain(failure), "error");
    }
  };
  const reload = async () => {
    show(await api(`/v1/jobs/${job.id}`, { signal }));
    await Promise.all([transcript.load(signal), loadResults(), loadTimeline()]);
  };

  cancel.addEventListener("click", async () => (await act(job, "cancel")) && reload());
  remove.addEventListener("click", async () => {
    if (await act(job, "delete")) location.hash = "#/";
  });

  root.replaceChildren(
    h("p", { class: "back" }, h("a", { href: "#/" }, "← Jobs")),
    h("h1", { tabindex: "-1" }, name),
    h("div", { class: "job-meta" },
      badge, h("span", { class: "progress-line" }, bar, pct),
      h("span", { class: "hint" }, `${clock(job.source.duration_seconds)} · uploaded ${when(job.created_at)}`)),
    error,
    h("div", { class: "buttons" }, cancel, remove),
    h("div", { class: "player" }, transcript.audio, transcript.audioNote),
    transcript.region,
    h("section", { class: "notes-region", "aria-labelledby": notesHeading },
      h("h2", { id: notesHeading }, "Notes"), notesEmpty, notes, totals),
    h("section", { "aria-labelledby": timelineHeading },
      h("h2", { id: timelineHeading }, "Timeline"), timeline));
  show(job);

  const start = Number.parseFloat(params.get("t") ?? "");
  if (Number.isFinite(start)) transcript.seek(start, false);
  transcript.loadAudio(signal);
  await Promise.all([transcript.load(signal), loadResults(), loadTimeline()]);
  if (!FINISHED.has(job.status) && !signal.aborted) follow(job.id);

  // The stream replays the timeline when it connects: read it once after a burst of states.
  let timelineTimer = null;
  function timelineSoon() {
    clearTimeout(timelineTimer);
    timelineTimer = setTimeout(loadTimeline, 300);
  }

  async function follow(jobId) {
    try {
      await followJob(jobId, (type, data) => {
        if (type === "progress") show({ status: data.status, progress: data.progress });
        else if (type === "state") timelineSoon();
        else if (type === "segment") transcript.add(data);
        else if (type === "note") addNote(data);
        else if (type === "end") {
          announce(`${name}: ${data.status}.`);
          if (data.status !== "deleted") reload();
        }
      }, signal);
    } catch (failure) {
      if (!signal.aborted) announce(`Live updates stopped: ${explain(failure)}`, "error");
    }
  }
}
