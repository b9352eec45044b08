// The upload form: a file (chosen, or dropped anywhere on the page) or a recording from the
// microphone, sent to the ingestion API with the notes to write and how to transcribe it.

import { explain, upload } from "./api.js";
import { announce, clock, h, uid } from "./dom.js";

// Whisper's languages (voxflow.languages), named in the reader's language by the browser.
const LANGUAGES = ("en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th " +
  "ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn " +
  "yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su yue").split(" ");
const TASKS = [["summary", "Summary"], ["diary", "Diary entry"], ["action_items", "Action items"]];

function languageOptions() {
  let names = null;
  try {
    names = new Intl.DisplayNames([navigator.language, "en"], { type: "language" });
  } catch {
    // no Intl.DisplayNames: the codes themselves
  }
  const named = LANGUAGES.map((code) => [code, names?.of(code) ?? code]);
  named.sort((a, b) => a[1].localeCompare(b[1]));
  return [h("option", { value: "" }, "Detect automatically"), ...named.map(([code, name]) => h("option", { value: code }, `${name} (${code})`))];
}

/** Fill `root` with the upload form; `onUploaded(job)` runs after each accepted upload. */
export function mountUpload(root, onUploaded, signal) {
  const ids = { file: uid("audio-file"), instruction: uid("instruction"), language: uid("language"), speakers: uid("speakers"), heading: uid("upload") };
  const file = h("input", { id: ids.file, type: "file", name: "file", accept: "audio/*,video/*", "aria-describedby": `${ids.file}-hint` });
  const checks = TASKS.map(([value, label]) => h("input", { type: "checkbox", name: "task", value }));
  const instruction = h("textarea", { id: ids.instruction, rows: 2, maxlength: 4000, placeholder: "e.g. List every decision and who made it" });
  const language = h("select", { id: ids.language }, languageOptions());
  const diarize = h("input", { type: "checkbox", name: "diarize" });
  const speakers = h("input", { id: ids.speakers, type: "number", min: 1, max: 32, inputmode: "numeric", disabled: true });
  diarize.addEventListener("change", () => { speakers.disabled = !diarize.checked; });
  const send = h("button", { type: "submit" }, "Upload");
  const record = h("button", { type: "button", class: "secondary" }, "Record");
  const bar = h("progress", { max: 100, value: 0, "aria-label": "Upload progress" });
  const percent = h("span", { class: "hint" });
  const progressLine = h("div", { class: "progress-line", hidden: true }, bar, percent);
  const hint = h("p", { id: `${ids.file}-hint`, class: "hint" }, "Or drop a file anywhere on this page.");

  const options = () => {
    const tasks = checks.filter((c) => c.checked).map((c) => c.value);
    const chosen = {};
    if (instruction.value.trim()) {
      tasks.push("custom");
      chosen.instruction = instruction.value.trim();
    }
    if (tasks.length) chosen.tasks = tasks;
    if (language.value) chosen.language = language.value;
    if (diarize.checked) {
      chosen.diarize = true;
      if (speakers.value) chosen.speakers = Number(speakers.value);
    }
    return chosen;
  };

  let busy = false;
  const sendFile = async (chosen) => {
    if (busy) return;
    busy = true;
    send.disabled = true;
    progressLine.hidden = false;
    const show = (fraction) => {
      bar.value = Math.round(fraction * 100);
      percent.textContent = `Uploading ${chosen.name}: ${bar.value}%`;
    };
    show(0);
    try {
      const job = await upload(chosen, options(), show);
      announce(`Uploaded ${chosen.name}.`);
      file.value = "";
      hint.textContent = "Or drop a file anywhere on this page.";
      onUploaded(job);
    } catch (error) {
      announce(`${chosen.name} was not accepted: ${explain(error)}`, "error");
    } finally {
      busy = false;
      send.disabled = false;
      progressLine.hidden = true;
    }
  };

  const form = h("form", { class: "upload-form", "aria-labelledby": ids.heading },
    h("div", { class: "field" }, h("label", { for: ids.file }, "Audio file"), file, hint),
    h("fieldset", {},
      h("legend", {}, "Notes to write"),
      h("div", { class: "checks" }, TASKS.map(([, label], i) => h("label", { class: "check" }, checks[i], label))),
      h("div", { class: "field" }, h("label", { for: ids.instruction }, "Custom instruction (optional)"), instruction),
    ),
    h("div", { class: "row" },
      h("div", { class: "field" }, h("label", { for: ids.language }, "Language"), language),
      h("div", { class: "field" },
        h("label", { class: "check" }, diarize, "Diarize (speakers)"),
        h("label", { for: ids.speakers }, "Number of speakers (optional)"), speakers),
    ),
    h("div", { class: "buttons" }, send, record),
    progressLine,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!file.files.length) {
      announce("Choose an audio file first.", "error");
      file.focus();
      return;
    }
    sendFile(file.files[0]);
  });
  file.addEventListener("change", () => {
    if (file.files.length) hint.textContent = `Ready: ${file.files[0].name}. Press Upload.`;
  });

  // Dropping a file anywhere on the page chooses it (main.js keeps the browser from opening it).
  const drop = (event) => {
    if (!event.dataTransfer?.files.length) return;
    file.files = event.dataTransfer.files;
    file.dispatchEvent(new Event("change"));
    send.focus();
  };
  document.addEventListener("drop", drop, { signal });

  setUpRecording(record, (take) => sendFile(take), signal);
  root.replaceChildren(h("h2", { id: ids.heading }, "Upload"), form);
}

/** The Record button: records the microphone (MediaRecorder) until pressed again, then
 * hands the take over as a file. */
function setUpRecording(button, onTake, signal) {
  let recorder = null;
  let timer = null;
  const stop = () => recorder?.state === "recording" && recorder.stop();
  signal.addEventListener("abort", stop);
  button.addEventListener("click", async () => {
    if (recorder?.state === "recording") return stop();
    if (!navigator.mediaDevices?.getUserMedia || !window.MediaRecorder) {
      announce("This browser cannot record here (recording needs https or localhost).", "error");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      announce(`The microphone is not available: ${error.message}`, "error");
      return;
    }
    const type = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4"].find((t) => MediaRecorder.isTypeSupported(t));
    recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
    const chunks = [];
    const started = Date.now();
    recorder.addEventListener("dataavailable", (event) => event.data.size && chunks.push(event.data));
    recorder.addEventListener("stop", () => {
      clearInterval(timer);
      stream.getTracks().forEach((track) => track.stop());
      button.textContent = "Record";
      const mime = recorder.mimeType || type || "audio/webm";
      const extension = mime.includes("ogg") ? "ogg" : mime.includes("mp4") ? "m4a" : "webm";
      const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
      if (!signal.aborted) onTake(new File(chunks, `recording-${stamp}.${extension}`, { type: mime }));
    });
    recorder.start(1000);
    const tick = () => { button.textContent = `Stop recording (${clock((Date.now() - started) / 1000)})`; };
    tick();
    timer = setInterval(tick, 1000);
    announce("Recording… press Stop recording to upload the take.");
  });
}
