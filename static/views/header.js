// The console's header: the connection indicator (a status region), the Status control (the person's
// chosen presence, sent over the socket), the person's menu (views/person-menu.js), the banner that
// tells an offline agent plainly that no work reaches them, and the note that a tenant has more people,
// queues, labels or canned responses than the console loads (the store's `partial`).

import { byId, setText, toast } from "../dom.js";
import { currentLanguage, t } from "../i18n.js";
import { mountPersonMenu } from "./person-menu.js";

export function mountHeader({ store }) {
  const tools = byId("topbar-tools");
  const connection = byId("connection");
  const presence = byId("presence");
  const banner = byId("offline-banner");
  const partial = byId("partial-banner");
  const me = store.state.me;
  let live = null;

  tools.hidden = false;
  mountPersonMenu({ me, beforeSignOut: () => live?.stop() });

  function showPresence() {
    const user = store.state.me.user;
    presence.value = user.status;
    banner.hidden = user.status !== "offline" || me.role !== "agent";
  }

  function setPresence(value) {
    if (!live || !live.send({ type: "presence", status: value })) {
      toast(t("header.notConnected"));
      showPresence();
    }
  }

  presence.addEventListener("change", () => setPresence(presence.value));
  byId("go-online").addEventListener("click", () => setPresence("online"));

  function showPartial() {
    const number = new Intl.NumberFormat(currentLanguage());
    const notes = store.state.partial.map((p) => t(`partial.${p.kind}`, { shown: number.format(p.shown), total: number.format(p.total) }));
    setText(partial, notes.join(" "));
    partial.hidden = notes.length === 0;
  }

  store.subscribe((change) => {
    if (change.type === "presence" || change.type === "snapshot") showPresence();
    if (change.type === "snapshot") showPartial();
  });
  showPresence();

  return {
    setLive(value) {
      live = value;
    },
    connection(state) {
      connection.dataset.state = state;
      setText(connection, t(`connection.${state}`));
    },
    problem: toast,
  };
}
