// The administration pages: one address per section (/admin/users, /admin/settings, …), each drawn by its
// module into #admin-section. /admin opens the first section the side navigation offers this role.

import { startPage } from "./page.js";
import { byId, clear, el } from "./dom.js";
import { t } from "./i18n.js";
import { describe } from "./admin/kit.js";
import * as audit from "./admin/audit.js";
import * as canned from "./admin/canned.js";
import * as channels from "./admin/channels.js";
import * as labels from "./admin/labels.js";
import * as queues from "./admin/queues.js";
import * as settings from "./admin/settings.js";
import * as tokens from "./admin/tokens.js";
import * as users from "./admin/users.js";

const SECTIONS = { users, queues, channels, canned, labels, tokens, audit, settings };

function currentSection() {
  const links = [...document.querySelectorAll(".admin-nav a[data-section]")];
  const named = window.location.pathname.split("/")[2];
  const link = links.find((a) => a.dataset.section === named) ?? links[0];
  if (!link) return null;
  if (window.location.pathname !== link.pathname) window.history.replaceState(null, "", link.pathname);
  for (const a of links) {
    if (a === link) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  return link.dataset.section;
}

async function main() {
  const me = await startPage();
  const root = byId("admin-section");
  const key = currentSection();
  const section = SECTIONS[key];
  if (!section) return;
  document.title = `${t(`admin.nav.${key}`)} · Fi.V Console`;
  try {
    await section.render(root, me);
  } catch (problem) {
    if (problem?.status === 401) return;
    clear(root).append(el("p", { class: "banner", role: "alert", text: `${t("admin.loadFailed")} ${describe(problem)}` }));
  }
}

main().catch(() => null);
