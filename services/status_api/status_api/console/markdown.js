// A small Markdown renderer for notes: headings, lists, paragraphs, block quotes, code
// (fenced and inline), bold and italic. Notes are written by an LLM from a recording, so
// they are untrusted: the renderer builds DOM nodes and puts every piece of text in as a
// text node, never as HTML (which escapes all of it, `<script>` included). No links or
// images are made: nothing in a note can make the page fetch or navigate anywhere.

import { h } from "./dom.js";

const FENCE = /^\s*(```|~~~)/;
const HEADING = /^(#{1,6})\s+(.*?)\s*#*\s*$/;
const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*\d{1,9}[.)]\s+(.*)$/;
const QUOTE = /^\s*>\s?(.*)$/;
// Inline spans, leftmost first: code, then bold, then italic (with * or _).
const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\*\*(?=\S)([\s\S]*?\S)\*\*|__(?=\S)([\s\S]*?\S)__|\*(?=\S)([\s\S]*?\S)\*|\b_(?=\S)([\s\S]*?\S)_\b/;

/** Inline Markdown as nodes: text, <code>, <strong> and <em> (nested where it makes sense). */
export function inline(text) {
  const nodes = [];
  let rest = text;
  for (let match = INLINE.exec(rest); match; match = INLINE.exec(rest)) {
    if (match.index > 0) nodes.push(rest.slice(0, match.index));
    const [, , code, bold, boldUnder, italic, italicUnder] = match;
    if (code !== undefined) nodes.push(h("code", {}, code.trim() || code));
    else if (bold ?? boldUnder) nodes.push(h("strong", {}, inline(bold ?? boldUnder)));
    else nodes.push(h("em", {}, inline(italic ?? italicUnder)));
    rest = rest.slice(match.index + match[0].length);
  }
  if (rest) nodes.push(rest);
  return nodes;
}

/** Lines of text with their line breaks kept (notes often put one sentence per line). */
function lines(texts) {
  return texts.flatMap((text, i) => (i ? [h("br"), ...inline(text)] : inline(text)));
}

/** A document fragment for a Markdown text; headings start at `<h{top}>`. */
export function renderMarkdown(source, top = 4) {
  const out = document.createDocumentFragment();
  const rows = String(source).replace(/\r\n?/g, "\n").split("\n");
  let paragraph = [];
  let quote = [];
  let list = null;
  const flush = () => {
    if (paragraph.length) out.append(h("p", {}, lines(paragraph)));
    if (quote.length) out.append(h("blockquote", {}, h("p", {}, lines(quote))));
    paragraph = [];
    quote = [];
    list = null;
  };
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    let match;
    if (FENCE.test(row)) {
      flush();
      const fence = row.trim().slice(0, 3);
      const code = [];
      while (++i < rows.length && !rows[i].trim().startsWith(fence)) code.push(rows[i]);
      out.append(h("pre", {}, h("code", {}, code.join("\n"))));
    } else if (!row.trim()) {
      flush();
    } else if ((match = HEADING.exec(row))) {
      flush();
      const level = Math.min(6, top + match[1].length - 1);
      out.append(h(`h${level}`, {}, inline(match[2])));
    } else if ((match = BULLET.exec(row) ?? NUMBERED.exec(row))) {
      const kind = BULLET.test(row) ? "ul" : "ol";
      if (!list || list.tagName.toLowerCase() !== kind) {
        flush();
        list = h(kind);
        out.append(list);
      }
      list.append(h("li", {}, inline(match[1])));
    } else if ((match = QUOTE.exec(row))) {
      if (paragraph.length || list) flush();
      quote.push(match[1]);
    } else if (list && /^\s{2,}\S/.test(row)) {
      list.lastElementChild.append(" ", ...inline(row.trim())); // an item's continued line
    } else {
      if (quote.length || list) flush();
      paragraph.push(row.trim());
    }
  }
  flush();
  return out;
}
