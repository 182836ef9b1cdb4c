// The person's menu in every page's header: who they are, the language (the browser's or a choice kept
// in this browser), a new password, and signing out.

import * as api from "../api.js";
import { byId, el, setText, toast } from "../dom.js";
import { LANGUAGES, chooseLanguage, chosenLanguage, t } from "../i18n.js";
import { openDialog } from "./dialogs.js";

export function mountPersonMenu({ me, beforeSignOut = () => {} }) {
  const menuButton = byId("person-menu-button");
  const menu = byId("person-menu");
  const languageChoice = byId("language-choice");

  menuButton.textContent = me.user.name;
  menuButton.setAttribute("aria-label", t("menu.label", { name: me.user.name }));
  setText(byId("person-details"), t("menu.details", { role: t(`role.${me.role}`), workspace: me.workspace }));

  languageChoice.append(el("option", { value: "", text: t("menu.languageBrowser") }));
  for (const [code, name] of Object.entries(LANGUAGES)) languageChoice.append(el("option", { value: code, text: name, lang: code }));
  languageChoice.value = window.localStorage.getItem("fiv.language") ? chosenLanguage() : "";
  languageChoice.addEventListener("change", () => {
    chooseLanguage(languageChoice.value);
    window.location.reload();
  });

  function closeMenu() {
    menu.hidden = true;
    menuButton.setAttribute("aria-expanded", "false");
  }
  menuButton.addEventListener("click", () => {
    const opening = menu.hidden;
    menu.hidden = !opening;
    menuButton.setAttribute("aria-expanded", String(opening));
    if (opening) languageChoice.focus();
  });
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      closeMenu();
      menuButton.focus();
    }
  });
  document.addEventListener("click", (event) => {
    if (!menu.hidden && !menu.contains(event.target) && event.target !== menuButton) closeMenu();
  });

  byId("sign-out").addEventListener("click", async () => {
    try {
      await api.post("/api/auth/logout");
    } catch (error) {
      if (error.status !== 401) {
        toast(t("menu.signOutFailed"));
        return;
      }
    }
    beforeSignOut();
    window.location.assign("/login");
  });

  byId("change-password").addEventListener("click", () => {
    closeMenu();
    const current = el("input", { type: "password", id: "current-password", autocomplete: "current-password", required: true });
    const next = el("input", { type: "password", id: "new-password", autocomplete: "new-password", required: true, minlength: 12 });
    openDialog({
      title: t("password.title"),
      body: [
        el("label", { for: "current-password", text: t("password.current") }), current,
        el("label", { for: "new-password", text: t("password.new") }), next,
      ],
      submit: t("password.submit"),
      async onSubmit() {
        // This session goes on under a new CSRF token; every other session (and socket) of the person ends.
        const answer = await api.post("/api/me/password", { current_password: current.value, new_password: next.value });
        api.setCsrfToken(answer.csrf_token);
        return t("password.done");
      },
    });
  });
}
