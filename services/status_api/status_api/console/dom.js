// Building elements and formatting values. Text always goes in as text nodes
// (never as HTML), so nothing a recording or a note says can become markup.

/** An element with attributes (`on*` are listeners) and children (strings become text). */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

/** A heading, label or region id unique in the page. */
let counter = 0;
export const uid = (prefix) => `${prefix}-${++counter}`;

/** Seconds as m:ss, or h:mm:ss from an hour on. */
export function clock(seconds) {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  const s = String(total % 60).padStart(2, "0");
  const m = Math.floor(total / 60) % 60;
  const hours = Math.floor(total / 3600);
  return hours ? `${hours}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** How long ago a moment was, in words short enough for a table cell. */
export function age(iso, now = Date.now()) {
  const seconds = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${Math.floor(seconds)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** A moment in the reader's own time zone. */
export const when = (iso) => new Date(iso).toLocaleString();

/** A US-dollar amount with enough digits for fractions of a cent. */
export const dollars = (value) => `$${Number(value || 0).toFixed(value && value < 0.01 ? 5 : 2)}`;

export const FINISHED = new Set(["completed", "failed", "canceled"]);

/** A task name as a title: `action_items` → `Action items`. */
export function title(name) {
  const words = String(name).replaceAll("_", " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** Say something to screen readers (and show it) in the page's status line. */
let fading = null;
export function announce(message, kind = "info") {
  const line = document.getElementById("announce");
  line.dataset.kind = kind;
  line.textContent = message;
  clearTimeout(fading);
  fading = setTimeout(() => { line.textContent = ""; }, kind === "error" ? 15_000 : 8_000);
}
