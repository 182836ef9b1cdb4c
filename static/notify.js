// Alerts that reach the agent: a short sound (browsers allow it only after the person's first click or
// key, so it is unlocked then), a browser notification when they allowed them, and the count of
// conversations waiting for them in the tab's title. Only for their own conversations and their queues'.

import { t } from "./i18n.js";
import { isStaff } from "./store.js";

export function createNotifier(store, ui) {
  const me = store.state.me;
  let audio = null;
  const baseTitle = document.title;

  function unlock() {
    if (audio) return;
    try {
      audio = new AudioContext();
    } catch {
      audio = null;
    }
    if (typeof Notification !== "undefined" && Notification.permission === "default") Notification.requestPermission().catch(() => null);
  }
  document.addEventListener("pointerdown", unlock, { once: true });
  document.addEventListener("keydown", unlock, { once: true });

  function beep() {
    if (!audio || audio.state !== "running") return;
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.3);
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start();
    oscillator.stop(audio.currentTime + 0.3);
  }

  function notify(title, body, conversationId) {
    beep();
    if (typeof Notification === "undefined" || Notification.permission !== "granted" || document.visibilityState === "visible") return;
    const shown = new Notification(title, { body, tag: conversationId });
    shown.addEventListener("click", () => {
      window.focus();
      ui.set({ openId: conversationId });
    });
  }

  function updateTitle() {
    const waitingForMe = store.view("mine").filter((c) => c.unread_count > 0).length;
    document.title = waitingForMe ? `(${waitingForMe}) ${baseTitle}` : baseTitle;
  }
  store.subscribe(updateTitle);

  return {
    event(frame) {
      const data = frame.data ?? {};
      const conversation = data.conversation;
      const name = (c) => c?.contact?.name || c?.contact?.profile_name || c?.contact?.username || c?.contact?.wa_id || "";
      if (frame.event === "conversation.assigned" || frame.event === "conversation.transferred") {
        if (conversation?.agent_id === me.user.id && data.from?.agent_id !== me.user.id) {
          notify(t("notify.assigned"), name(conversation), conversation.id);
        }
      } else if (frame.event === "message.created" && data.message?.direction === "inbound") {
        const known = store.state.conversations.get(data.conversation_id);
        const forMe = known && (known.agent_id === me.user.id || (!isStaff(me) && known.status === "waiting"));
        if (forMe && !(ui.openId === data.conversation_id && document.visibilityState === "visible")) {
          notify(t("notify.message", { name: name(known) }), data.message.text ?? "", data.conversation_id);
        }
      }
    },
  };
}
