// The two APIs: the status API (this page's own origin) and the ingestion API (another
// origin, for uploads; it allows this page's origin with CORS). Every request carries the
// API key as a bearer token; no cookie is ever involved.

const KEY_NAME = "voxflow.api_key";
let config = { ingest_url: "" };

/** An error answer: `{"error": {"code", "message"}}`, or what the network said. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Read where uploads go (the status API serves it beside the console). */
export async function loadConfig() {
  const response = await fetch("/console/config.json", { cache: "no-store" });
  config = await response.json();
}

/** The saved key: this tab's, else this device's. */
export function getKey() {
  return sessionStorage.getItem(KEY_NAME) ?? localStorage.getItem(KEY_NAME) ?? "";
}

/** Where the key is kept: "device", "tab" or "" (none). */
export function keyPlace() {
  if (sessionStorage.getItem(KEY_NAME) !== null) return "tab";
  return localStorage.getItem(KEY_NAME) !== null ? "device" : "";
}

/** Keep the key for this tab only, or on this device when the user asked to. */
export function saveKey(key, remember) {
  forgetKey();
  (remember ? localStorage : sessionStorage).setItem(KEY_NAME, key);
}

export function forgetKey() {
  localStorage.removeItem(KEY_NAME);
  sessionStorage.removeItem(KEY_NAME);
}

const auth = () => ({ Authorization: `Bearer ${getKey()}` });

async function failure(response) {
  try {
    const { error } = await response.json();
    return new ApiError(response.status, error.code, error.message);
  } catch {
    return new ApiError(response.status, `http_${response.status}`, response.statusText);
  }
}

/** A status API call: the parsed JSON (null for 204), or the raw response with `raw`. */
export async function api(path, { method = "GET", headers = {}, signal, raw = false } = {}) {
  if (!getKey()) throw new ApiError(401, "no_key", "Save an API key first.");
  const response = await fetch(path, { method, signal, cache: "no-store", headers: { ...auth(), ...headers } });
  if (!response.ok) throw await failure(response);
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

/** A file the API serves, saved by the browser under `filename` (fetched with the key,
 * since a plain link cannot send it, then handed over as an object URL). */
export async function download(path, filename) {
  const blob = await (await api(path, { raw: true })).blob();
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "console-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Upload a recording to the ingestion API with its options. XMLHttpRequest rather than
 * fetch, for its upload progress events (`onProgress(fraction)`). Resolves to the
 * accepted job (`{id, ...}`); rejects with an ApiError. */
export function upload(file, options, onProgress) {
  const body = new FormData();
  body.append("file", file, file.name);
  body.append("options", JSON.stringify(options));
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${config.ingest_url}/v1/jobs`);
    xhr.setRequestHeader("Authorization", auth().Authorization);
    // A retry of this very upload (none is made here) would not make a second job.
    xhr.setRequestHeader("Idempotency-Key", randomKey());
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status === 202) return resolve(xhr.response);
      const error = xhr.response?.error ?? {};
      reject(new ApiError(xhr.status, error.code ?? `http_${xhr.status}`, error.message ?? "The upload was refused."));
    });
    const unreachable = () =>
      reject(new ApiError(0, "network", `The ingestion API at ${config.ingest_url} could not be reached.`));
    xhr.addEventListener("error", unreachable);
    xhr.addEventListener("timeout", unreachable);
    xhr.send(body);
  });
}

/** A sentence for an error, whatever threw it. */
export function explain(error) {
  if (error instanceof ApiError) {
    if (error.code === "no_key") return error.message;
    if (error.status === 401) return "The API key was refused: it is unknown or revoked.";
    return error.message;
  }
  return `The server could not be reached (${error.message}).`;
}
