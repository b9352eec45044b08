// A job's recording and transcript: the player, the segments as buttons that seek it,
// the segment being played highlighted, and the transcript's downloads.

import { api, download, explain } from "./api.js";
import { announce, clock, h } from "./dom.js";

const FORMATS = [["txt", "Text"], ["srt", "SRT"], ["vtt", "WebVTT"], ["json", "JSON"]];

export class Transcript {
  /** `job` is the job's view; `heading` names the region it fills. */
  constructor(job, heading) {
    this.job = job;
    this.segments = new Map(); // id -> segment, from the stream or the stored transcript
    this.buttons = [];
    this.pendingSeek = null;
    this.objectUrl = null;
    this.audio = h("audio", { controls: true, preload: "metadata", "aria-label": "Recording" });
    this.audioNote = h("p", { class: "hint" }, "Loading the recording…");
    this.list = h("ol", { class: "segments" });
    this.empty = h("p", { class: "hint" }, "No transcript yet.");
    this.speakers = h("p", { class: "hint speakers", hidden: true });
    this.downloads = h("div", { class: "buttons downloads", hidden: true },
      h("span", { class: "hint" }, "Download:"),
      FORMATS.map(([format, label]) => h("button", {
        type: "button", class: "small secondary", "aria-label": `Download ${label}`,
        onclick: () => this.download(format),
      }, label)));
    this.region = h("section", { class: "transcript", "aria-labelledby": heading },
      h("h2", { id: heading }, "Transcript"), this.downloads, this.speakers, this.empty, this.list);
    this.audio.addEventListener("timeupdate", () => this.highlight());
    this.audio.addEventListener("seeked", () => this.highlight());
    this.audio.addEventListener("loadedmetadata", () => {
      if (this.pendingSeek !== null) this.seek(this.pendingSeek, false);
    });
  }

  /** Fetch the recording with the key and play it from an object URL: `<audio src>` cannot
   * send an Authorization header. The whole file is held in memory, which suits
   * recordings up to a few tens of MB (a long one could be streamed through a Service
   * Worker instead). With S3 storage the API redirects to a presigned URL, which needs
   * the bucket to allow this origin (CORS) and the policy to allow it in connect-src. */
  async loadAudio(signal) {
    try {
      const response = await api(`/v1/jobs/${this.job.id}/audio`, { signal, raw: true });
      const blob = await response.blob();
      this.objectUrl = URL.createObjectURL(blob);
      this.audio.src = this.objectUrl;
      this.audioNote.hidden = true;
    } catch (error) {
      if (signal.aborted) return;
      this.audioNote.textContent = error.status === 410 ? "The recording was deleted (its transcript and notes are kept)."
        : `The recording cannot be played: ${explain(error)}`;
    }
  }

  /** Free the recording's memory (when the page is left). */
  release() {
    this.audio.pause();
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
  }

  /** Play from `seconds` (once the recording is there, if it is not yet). */
  seek(seconds, play = true) {
    if (this.audio.readyState < HTMLMediaElement.HAVE_METADATA) {
      this.pendingSeek = seconds;
      return;
    }
    this.pendingSeek = null;
    this.audio.currentTime = seconds;
    this.highlight();
    if (play) this.audio.play().catch(() => {}); // a browser may refuse to play unasked
  }

  /** Replace every segment with the stored transcript's (`format=json`). */
  async load(signal) {
    try {
      const doc = await api(`/v1/jobs/${this.job.id}/transcript?format=json`, { signal });
      this.segments.clear();
      doc.segments.forEach((segment, i) => this.segments.set(segment.id ?? i, segment));
      const named = (doc.speakers ?? []).map((s) => (s.name ? `${s.name} (${s.label})` : s.label));
      this.speakers.hidden = named.length === 0;
      this.speakers.textContent = `Speakers: ${named.join(", ")}`;
      this.downloads.hidden = false;
      this.render();
    } catch (error) {
      if (signal.aborted || error.status === 409) return; // 409: not transcribed yet
      announce(explain(error), "error");
    }
  }

  /** A segment that arrived on the live stream. */
  add(segment) {
    if (this.segments.has(segment.id)) return;
    this.segments.set(segment.id, segment);
    this.render();
  }

  render() {
    const ordered = [...this.segments.values()].sort((a, b) => a.start - b.start);
    this.buttons = ordered.map((segment) => {
      const who = segment.speaker ? h("span", { class: "speaker" }, `${segment.speaker}: `) : null;
      const button = h("button", { type: "button", class: "segment", "data-start": segment.start, "data-end": segment.end },
        h("span", { class: "time" }, clock(segment.start)), " ", who, segment.text.trim());
      button.addEventListener("click", () => this.seek(segment.start));
      return button;
    });
    this.list.replaceChildren(...this.buttons.map((button) => h("li", {}, button)));
    this.empty.hidden = ordered.length > 0;
    this.highlight();
  }

  /** Mark the segment the player is in (aria-current), if the player has started. */
  highlight() {
    const now = this.audio.currentTime;
    const playing = this.audio.readyState >= HTMLMediaElement.HAVE_METADATA && (now > 0 || !this.audio.paused);
    for (const button of this.buttons) {
      const inside = playing && now >= Number(button.dataset.start) && now < Number(button.dataset.end);
      if (inside) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  async download(format) {
    const base = (this.job.source.filename ?? this.job.id).replace(/\.[^.]+$/, "");
    try {
      await download(`/v1/jobs/${this.job.id}/transcript?format=${format}`, `${base}.${format}`);
    } catch (error) {
      announce(explain(error), "error");
    }
  }
}
