// The API key form: saved for this tab (sessionStorage), or on this device (localStorage)
// when "Remember on this device" is ticked; "Forget key" removes it from both.

import { forgetKey, getKey, keyPlace, saveKey } from "./api.js";
import { announce, h } from "./dom.js";

const PLACES = {
  tab: "A key is saved for this tab.",
  device: "A key is saved on this device.",
  "": "No key saved: the console needs one to show your jobs.",
};

/** Fill `root` (a <details>) with the key form; `onChange()` runs after a save or a forget. */
export function mountKeyForm(root, onChange) {
  const input = h("input", {
    id: "api-key", type: "password", name: "api-key", autocomplete: "off", spellcheck: "false",
    placeholder: "vf_…", "aria-describedby": "key-state",
  });
  const remember = h("input", { id: "remember-key", type: "checkbox" });
  const state = h("p", { id: "key-state", class: "hint" });
  const forget = h("button", { type: "button", class: "secondary" }, "Forget key");
  const summary = h("summary");
  const refresh = () => {
    const place = keyPlace();
    state.textContent = PLACES[place];
    summary.textContent = place ? `API key saved ${place === "tab" ? "for this tab" : "on this device"}: change or forget it` : "Sign in with an API key";
    root.open = !place; // folded away once a key is saved
    forget.hidden = !place;
    remember.checked = place === "device";
    input.placeholder = place ? "saved (enter a new key to replace it)" : "vf_…";
  };
  forget.addEventListener("click", () => {
    forgetKey();
    refresh();
    announce("The API key was forgotten.");
    input.focus();
    onChange();
  });
  const form = h("form", { class: "key-form" },
    h("div", { class: "field grow" }, h("label", { for: "api-key" }, "API key"), input),
    h("label", { class: "check" }, remember, "Remember on this device"),
    h("div", { class: "buttons" }, h("button", { type: "submit" }, "Save key"), forget),
    state,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key && getKey()) {
      // Ticking or unticking "Remember" moves the saved key.
      saveKey(getKey(), remember.checked);
    } else if (!key) {
      announce("Enter an API key first.", "error");
      input.focus();
      return;
    } else {
      saveKey(key, remember.checked);
    }
    input.value = "";
    refresh();
    announce(remember.checked ? "Key saved on this device." : "Key saved for this tab.");
    onChange();
  });
  root.replaceChildren(summary, form);
  refresh();
}
