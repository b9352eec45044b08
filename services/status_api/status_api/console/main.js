// The console's entry point: the key form, then one view at a time by the URL's hash
// (#/ jobs and upload, #/jobs/<id>, #/search, #/queue). Each view gets an AbortSignal
// that aborts when the reader leaves it: requests, polls and the live stream stop.

import { getKey, loadConfig } from "./api.js";
import { announce, h } from "./dom.js";
import { mountJob } from "./job.js";
import { mountJobs } from "./jobs.js";
import { mountKeyForm } from "./keyform.js";
import { mountQueue } from "./queue.js";
import { mountSearch } from "./search.js";
import { mountUpload } from "./upload.js";

const main = document.getElementById("main");
let leaving = null;
let first = true;

function home(root, signal) {
  const jobs = h("section");
  const upload = h("section");
  root.replaceChildren(h("h1", { class: "visually-hidden", tabindex: "-1" }, "Voxflow"), upload, jobs);
  const refresh = mountJobs(jobs, signal);
  mountUpload(upload, () => refresh(), signal);
}

function needKey(root) {
  root.replaceChildren(
    h("h1", { tabindex: "-1" }, "Welcome to Voxflow"),
    h("p", {}, "Save an API key above to upload recordings and see your jobs."),
    h("p", { class: "hint" }, "An operator creates one with ", h("code", {}, "voxflow keys create --tenant NAME"), "."));
}

const ROUTES = [
  [/^\/$/, (root, _match, _params, signal) => home(root, signal), "Jobs"],
  [/^\/jobs\/([^/]+)$/, (root, match, params, signal) => mountJob(root, decodeURIComponent(match[1]), params, signal), "Job"],
  [/^\/search$/, (root, _match, params, signal) => mountSearch(root, params, signal), "Search"],
  [/^\/queue$/, (root, _match, _params, signal) => mountQueue(root, signal), "Queue"],
];

function route() {
  const hash = location.hash;
  if (hash && !hash.startsWith("#/")) return; // an in-page anchor, not a view
  const [path, query = ""] = (hash.slice(1) || "/").split("?", 2);
  leaving?.abort();
  leaving = new AbortController();
  const { signal } = leaving;
  const params = new URLSearchParams(query);
  const found = ROUTES.find(([pattern]) => pattern.test(path));
  for (const link of document.querySelectorAll("nav a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === `#${path}`);
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
  }
  main.replaceChildren();
  document.title = `${found?.[2] ?? "Not found"} · Voxflow`;
  let shown;
  if (!getKey()) shown = needKey(main);
  else if (!found) shown = main.replaceChildren(h("h1", { tabindex: "-1" }, "Page not found"), h("p", {}, h("a", { href: "#/" }, "Back to your jobs")));
  else shown = found[1](main, path.match(found[0]), params, signal);
  // After a navigation (not the first load) a screen reader starts at the new view's title.
  const moved = !first;
  first = false;
  return Promise.resolve(shown).then(() => {
    if (moved && !signal.aborted && !main.contains(document.activeElement)) main.querySelector("h1")?.focus();
  });
}

async function start() {
  // A file dropped outside the upload view must not replace the console with the file.
  for (const type of ["dragover", "drop"]) document.addEventListener(type, (event) => event.preventDefault());
  mountKeyForm(document.getElementById("key"), route);
  try {
    await loadConfig();
  } catch (error) {
    announce(`The console's settings could not be read: ${error.message}`, "error");
  }
  window.addEventListener("hashchange", route);
  await route();
  // The first view is on screen and the key field usable (scripts/benchmarks/console.py).
  performance.mark("voxflow:ready");
  document.body.dataset.ready = "true";
}

start();
