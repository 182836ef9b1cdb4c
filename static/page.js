// The start every signed-in page but the console shares: who is signed in (signed out: to the sign-in
// page, which brings the person back), the CSRF token, the language and the tenant's time zone, the page's
// own text translated, and the person's menu. A page's module awaits `startPage()` and builds on `me`.

import * as api from "./api.js";
import { byId } from "./dom.js";
import { setup as setupLanguage, t, translatePage } from "./i18n.js";
import { mountPersonMenu } from "./views/person-menu.js";

export async function startPage() {
  let me;
  try {
    me = await api.get("/api/me");
  } catch (error) {
    translatePage();
    // Signed out, the API module is already on its way to the sign-in page.
    if (error.status !== 401) showProblem(t("console.unreachable"));
    throw error;
  }
  api.setCsrfToken(me.csrf_token);
  setupLanguage({ zone: me.time_zone });
  translatePage();
  if (me.user) {
    mountPersonMenu({ me });
    byId("topbar-tools").hidden = false;
  }
  return me;
}

function showProblem(text) {
  const main = document.querySelector("main");
  const note = document.createElement("p");
  note.className = "banner";
  note.setAttribute("role", "alert");
  note.textContent = text;
  main.prepend(note);
}
