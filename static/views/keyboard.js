// Keyboard shortcuts, on the key's meaning (event.key) so they work on any layout, never with Alt (which
// types letters on many layouts), never while typing in a field, and off when the person turns them off.
// `?` shows them all.

import { el } from "../dom.js";
import { t } from "../i18n.js";
import { openDialog } from "./dialogs.js";

const OFF_KEY = "fiv.shortcutsOff";

const SHORTCUTS = [
  ["j", "keys.next"],
  ["k", "keys.previous"],
  ["r", "keys.composer"],
  ["c", "keys.close"],
  ["t", "keys.transfer"],
  ["/", "keys.search"],
  ["Esc", "keys.back"],
  ["?", "keys.help"],
];

export function mountKeyboard({ ui, conversation, list }) {
  function help() {
    const toggle = el("input", { type: "checkbox", id: "shortcuts-off", checked: window.localStorage.getItem(OFF_KEY) === "1" });
    toggle.addEventListener("change", () => {
      if (toggle.checked) window.localStorage.setItem(OFF_KEY, "1");
      else window.localStorage.removeItem(OFF_KEY);
    });
    openDialog({
      title: t("keys.title"),
      body: [
        el("dl", { class: "shortcuts" }, ...SHORTCUTS.flatMap(([key, text]) => [el("dt", {}, el("kbd", { text: key })), el("dd", { text: t(text) })])),
        el("label", { class: "toggle" }, toggle, el("span", { text: t("keys.off") })),
      ],
    });
  }

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || event.defaultPrevented) return;
    const target = event.target;
    const typing = target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
    if (document.querySelector("dialog[open]")) return;
    if (event.key === "Escape" && typing && target.id === "composer") {
      target.blur();
      return;
    }
    if (typing) return;
    if (event.key === "?") {
      event.preventDefault();
      help();
      return;
    }
    if (window.localStorage.getItem(OFF_KEY) === "1") return;
    const actions = {
      j: () => ui.set({ openId: list.neighbour(1) }),
      k: () => ui.set({ openId: list.neighbour(-1) }),
      r: () => conversation.focusComposer(),
      c: () => conversation.close(),
      t: () => conversation.transfer(),
      "/": () => list.focusSearch(),
      Escape: () => ui.set({ openId: null }),
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });
}
