// One modal dialog at a time (the page's <dialog>): a title, fields, a submit button and Cancel. A refused
// submit shows the server's reason inside the dialog and keeps what was typed; focus returns to where it
// was when the dialog closes.

import { byId, clear, el } from "../dom.js";
import { t } from "../i18n.js";

export function openDialog({ title, body, submit, onSubmit, wide = false }) {
  const dialog = byId("dialog");
  // Focus goes back where it was; a redrawn view has a new element with the same id or data-id by then.
  const returnTo = document.activeElement;
  const returnKey = returnTo?.id ? `#${CSS.escape(returnTo.id)}` : returnTo?.dataset?.id ? `[data-id="${CSS.escape(returnTo.dataset.id)}"]` : null;
  const heading = el("h2", { id: "dialog-title", text: title });
  const error = el("p", { class: "form-message", role: "alert" });
  const submitButton = submit ? el("button", { type: "submit", text: submit }) : null;
  const cancel = el("button", { type: "button", class: "secondary", text: submit ? t("dialog.cancel") : t("dialog.close") });
  const form = el("form", { method: "dialog", class: "stack" }, heading, ...body, error, el("div", { class: "dialog-buttons" }, submitButton, cancel));
  clear(dialog).append(form);
  dialog.setAttribute("aria-labelledby", "dialog-title");
  dialog.classList.toggle("wide", wide);

  function close() {
    if (dialog.open) dialog.close();
  }
  dialog.addEventListener(
    "close",
    () => {
      const back = returnTo && document.contains(returnTo) ? returnTo : returnKey ? document.querySelector(returnKey) : null;
      back?.focus();
    },
    { once: true },
  );
  cancel.addEventListener("click", close);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!onSubmit) return close();
    error.textContent = "";
    if (submitButton) submitButton.disabled = true;
    try {
      const done = await onSubmit();
      if (typeof done === "string") {
        error.textContent = done;
        window.setTimeout(close, 1200);
      } else {
        close();
      }
    } catch (problem) {
      error.textContent = describeError(problem);
    } finally {
      if (submitButton) submitButton.disabled = false;
    }
  });
  dialog.showModal();
  const first = form.querySelector("input, select, textarea, button");
  if (first) first.focus();
  return {
    close,
    dialog,
    showError(text) {
      error.textContent = text;
    },
  };
}

// A refusal as a person reads it: the known cases in their words, else the server's own message.
export function describeError(problem) {
  if (problem?.details?.reason === "taken") return t("error.taken");
  if (problem?.code === "WINDOW_CLOSED") return t("error.windowClosed");
  if (problem?.status === 0) return t("error.unreachable");
  if (problem?.status === 404) return t("error.notFound");
  const fields = Array.isArray(problem?.details) ? problem.details.map((d) => d.message).join("; ") : "";
  return [problem?.message ?? t("error.unknown"), fields].filter(Boolean).join(": ");
}
