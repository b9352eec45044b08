// Following a job's live stream (GET /v1/jobs/{id}/stream, Server-Sent Events).
//
// A browser's EventSource cannot send an Authorization header, so the stream is read with
// fetch() and parsed here: the one hand-written protocol piece of the console. It follows
// the event-stream format of the HTML standard: lines end in CR, LF or CRLF; `field: value`
// (one space after the colon dropped); a line starting with ':' is a comment (the server's
// pings); a blank line dispatches the event gathered so far; `id` sets the last event id,
// which a reconnection sends back as Last-Event-ID so that the server resumes after it.

import { api, ApiError } from "./api.js";

export class SseParser {
  constructor(onEvent, lastEventId = "") {
    this.onEvent = onEvent;
    this.lastEventId = lastEventId;
    this.retry = null;
    this.pending = "";
    this.type = "";
    this.data = [];
  }

  /** Feed decoded text; whole lines are handled, a partial one waits for the rest. */
  push(text) {
    const buffer = this.pending + text;
    let start = 0;
    for (let i = 0; i < buffer.length; i++) {
      const char = buffer[i];
      if (char !== "\n" && char !== "\r") continue;
      if (char === "\r" && i === buffer.length - 1) break; // CRLF split across two chunks?
      this.line(buffer.slice(start, i));
      if (char === "\r" && buffer[i + 1] === "\n") i++;
      start = i + 1;
    }
    this.pending = buffer.slice(start);
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }

  dispatch() {
    const event = { type: this.type || "message", data: this.data.join("\n"), id: this.lastEventId };
    const empty = this.data.length === 0;
    this.type = "";
    this.data = [];
    if (!empty) this.onEvent(event);
  }
}

const pause = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });

/** Call `onEvent(type, data)` for each event of the job's stream until its `end` event,
 * reconnecting with Last-Event-ID after a network failure (five in a row at most). Stops
 * quietly when `signal` aborts; throws an ApiError the server answered (404, 401). */
export async function followJob(jobId, onEvent, signal) {
  let lastEventId = "";
  let failures = 0; // reconnections in a row with no event received
  let lastError = null;
  let delay = 1000;
  while (!signal.aborted) {
    let ended = false;
    try {
      const headers = lastEventId ? { "Last-Event-ID": lastEventId } : {};
      const response = await api(`/v1/jobs/${encodeURIComponent(jobId)}/stream`, { headers, signal, raw: true });
      const parser = new SseParser((event) => {
        failures = 0;
        lastEventId = event.id;
        if (event.type === "end") ended = true;
        onEvent(event.type, JSON.parse(event.data));
      }, lastEventId);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
        if (parser.retry !== null) delay = parser.retry;
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status !== 429 && error.status < 500) throw error;
      lastError = error;
    }
    if (ended || signal.aborted) return;
    if (++failures > 5) throw lastError ?? new Error("the live stream kept closing");
    await pause(delay, signal); // the stream closed early: come back where it stopped
  }
}
