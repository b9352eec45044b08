// Transcript search (#/search?q=...): GET /v1/search; each hit opens its job's page with
// the player at the hit's start (#/jobs/<id>?t=<seconds>).

import { api, explain } from "./api.js";
import { clock, h, uid } from "./dom.js";

const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** The text of an HTML-escaped fragment (entities decoded; it holds no tags). */
function unescape(html) {
  return html.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (entity, body) => {
    if (body[0] !== "#") return ENTITIES[body.toLowerCase()] ?? entity;
    const code = body[1] === "x" || body[1] === "X" ? Number.parseInt(body.slice(2), 16) : Number(body.slice(1));
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : entity;
  });
}

/** A snippet as nodes: the API sends escaped text with `<mark>` around the matched words.
 * Only those two tags are read, by splitting on them; every other piece becomes a text
 * node, so a snippet cannot add markup even if its escaping were wrong. */
export function highlighted(snippet) {
  const nodes = [];
  let marked = false;
  for (const piece of String(snippet).split(/(<mark>|<\/mark>)/)) {
    if (piece === "<mark>") marked = true;
    else if (piece === "</mark>") marked = false;
    else if (piece) nodes.push(marked ? h("mark", {}, unescape(piece)) : unescape(piece));
  }
  return nodes;
}

function hit(item) {
  const name = item.filename ?? item.job_id;
  const speaker = item.speaker_name ?? item.speaker;
  return h("li", { class: "hit" },
    h("a", { href: `#/jobs/${item.job_id}?t=${item.start}` },
      h("span", { class: "hit-head" }, h("span", { class: "file" }, name), " ", h("span", { class: "time" }, `at ${clock(item.start)}`),
        speaker ? h("span", { class: "speaker" }, ` · ${speaker}`) : null),
      h("span", { class: "snippet" }, highlighted(item.snippet))));
}

/** Fill `root` with the search form and, for `params.get("q")`, its results. */
export async function mountSearch(root, params, signal) {
  const inputId = uid("search");
  const query = params.get("q") ?? "";
  const input = h("input", { id: inputId, type: "search", name: "q", value: query, autocomplete: "off", enterkeyhint: "search" });
  const form = h("form", { role: "search", class: "search-form" },
    h("div", { class: "field grow" }, h("label", { for: inputId }, "Search transcripts"), input),
    h("div", { class: "buttons" }, h("button", { type: "submit" }, "Search")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = input.value.trim();
    location.hash = q ? `#/search?q=${encodeURIComponent(q)}` : "#/search";
  });
  const results = h("ol", { class: "hits" });
  const summary = h("p", { class: "hint", role: "status" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "More results");
  root.replaceChildren(h("h1", { tabindex: "-1" }, "Search"), form, summary, results, more);
  if (!query) {
    input.focus();
    return;
  }
  let shown = 0;
  const page = async (cursor) => {
    const search = new URLSearchParams({ q: query });
    if (cursor) search.set("cursor", cursor);
    try {
      const found = await api(`/v1/search?${search}`, { signal });
      results.append(...found.items.map(hit));
      shown += found.items.length;
      summary.textContent = shown ? `${shown} matching segment${shown > 1 ? "s" : ""}${found.next_cursor ? " so far" : ""}.` : "No transcript matches.";
      more.hidden = !found.next_cursor;
      more.onclick = () => page(found.next_cursor);
    } catch (error) {
      if (signal.aborted) return;
      summary.textContent = error.status === 404 ? "Search is not available on this server." : explain(error);
    }
  };
  await page(null);
}
