// The console page: who is signed in, the store loaded and kept live over /ws, and the views that
// render from it. Views share one small `ui` object (which list, which conversation is open, which pane
// a phone shows) and ask the store for everything else.

import * as api from "./api.js";
import { byId } from "./dom.js";
import { setup as setupLanguage, t, translatePage } from "./i18n.js";
import { connectLive } from "./live.js";
import { createStore, isStaff } from "./store.js";
import { createNotifier } from "./notify.js";
import { mountHeader } from "./views/header.js";
import { mountList } from "./views/list.js";
import { mountConversation } from "./views/conversation.js";
import { mountContact } from "./views/contact.js";
import { mountKeyboard } from "./views/keyboard.js";

const status = byId("console-status");

async function start() {
  let me;
  try {
    me = await api.get("/api/me");
  } catch (error) {
    if (error.status !== 401) status.textContent = t("console.unreachable");
    return;
  }
  api.setCsrfToken(me.csrf_token);
  setupLanguage({ zone: me.time_zone });
  translatePage();
  if (!me.user) {
    status.textContent = t("console.tokenOnly");
    return;
  }

  const store = createStore(me);
  const ui = {
    tab: "mine",
    openId: null,
    contactOpen: true,
    listeners: new Set(),
    set(changes) {
      Object.assign(ui, changes);
      // Opening a conversation shows it on a phone; the contact and list panes are asked for by name.
      if ("openId" in changes && !("pane" in changes)) ui.pane = ui.openId ? "conversation" : "list";
      byId("console").dataset.pane = ui.pane ?? "list";
      for (const listener of ui.listeners) listener(changes);
    },
    on(listener) {
      ui.listeners.add(listener);
    },
  };
  // Times are shown in the tenant's zone, which an admin may change while the console is open.
  store.subscribe((change) => {
    if (change.type === "tenant") setupLanguage({ zone: me.time_zone });
  });
  const notifier = createNotifier(store, ui);
  const header = mountHeader({ store, ui });
  const list = mountList({ store, ui });
  const conversation = mountConversation({ store, ui });
  mountContact({ store, ui });
  mountKeyboard({ ui, conversation, list });

  let firstHello = true;
  const live = connectLive({
    onState(state, user) {
      header.connection(state);
      if (state === "live" && firstHello) {
        firstHello = false;
        // A failure shows in the list, with a way to try again.
        store.loadSnapshot().catch(() => null);
      }
      if (user) store.apply({ event: "agent.presence", data: { user_id: user.id, name: user.name, role: user.role, status: user.status, connected: true } });
    },
    onEvent(frame) {
      store.apply(frame);
      notifier.event(frame);
    },
    onResync() {
      store.loadSnapshot().catch(() => null);
    },
    onSessionEnded() {
      window.location.assign(api.loginAddress());
    },
    onFrame(frame) {
      // A typing notice about a conversation just moved out of sight answers NOT_FOUND: nothing to tell.
      if (frame.type === "error" && frame.error.code !== "NOT_FOUND") header.problem(frame.error.message);
      else if (frame.type === "typing") conversation.colleagueTyping(frame.data);
    },
  });
  header.setLive(live);
  ui.live = live;
  // The store in reach of the browser's console (and of the tests that compare it with a fresh snapshot).
  window.fivConsole = { store, ui };
  status.textContent = "";
  status.hidden = true;
  byId("console").hidden = false;
  ui.set({ tab: isStaff(me) ? "all" : "mine" });
  // `/?conversation=<id>` opens it at once (the wallboard's Take over comes here).
  const asked = new URLSearchParams(window.location.search).get("conversation");
  if (asked) ui.set({ openId: asked });
}

start();
