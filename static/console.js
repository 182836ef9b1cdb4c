// The console shell: who is signed in (from GET /api/me), signing out, the live connection with its
// status, the person's chosen presence, and the activity it brings. Everything from the server is shown
// with textContent only, so a name or message holding markup stays text.

import { connectLive } from "./live.js";

const status = document.getElementById("console-status");
const panel = document.getElementById("console-user");
const nameField = document.getElementById("user-name");
const roleField = document.getElementById("user-role");
const workspaceField = document.getElementById("user-workspace");
const signOut = document.getElementById("sign-out");

const liveCard = document.getElementById("live");
const liveState = document.getElementById("live-state");
const presence = document.getElementById("presence");
const activity = document.getElementById("activity");
const activityEmpty = document.getElementById("activity-empty");

const STATE_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  ended: "Signed out",
};
const KEPT = 50;

let csrfToken = null;
let live = null;

function toLogin() {
  window.location.assign("/login");
}

async function loadMe() {
  let response;
  try {
    response = await fetch("/api/me", { headers: { Accept: "application/json" }, credentials: "same-origin" });
  } catch {
    status.textContent = "The server cannot be reached. Reload the page to try again.";
    return;
  }
  if (response.status === 401) {
    toLogin();
    return;
  }
  if (!response.ok) {
    status.textContent = "Your details could not be loaded. Reload the page to try again.";
    return;
  }
  const { data } = await response.json();
  csrfToken = data.csrf_token;
  nameField.textContent = data.user ? data.user.name : "API token";
  roleField.textContent = data.role;
  workspaceField.textContent = data.workspace;
  status.textContent = "";
  panel.hidden = false;
  if (data.user && !live) startLive();
}

function describe(frame) {
  const data = frame.data ?? {};
  switch (frame.event) {
    case "conversation.created":
      return "A customer started a conversation";
    case "message.created": {
      const message = data.message ?? {};
      const who = message.direction === "inbound" ? "Customer" : "Reply";
      return `${who}: ${message.text ?? `[${message.kind ?? "message"}]`}`;
    }
    case "note.created":
      return `Note by ${data.note?.author_name ?? "someone"}: ${data.note?.body ?? ""}`;
    case "agent.presence":
      return `${data.name} is ${data.status}${data.connected ? "" : " (not connected)"}`;
    case "conversation.assigned":
    case "conversation.transferred":
    case "conversation.unassigned":
    case "conversation.closed":
    case "conversation.reopened": {
      const contact = data.conversation?.contact;
      const name = contact?.name ?? contact?.profile_name ?? contact?.wa_id ?? "a customer";
      return `Conversation with ${name}: ${frame.event.split(".")[1]}`;
    }
    default:
      return null;
  }
}

function show(text) {
  const item = document.createElement("li");
  item.textContent = text;
  activity.prepend(item);
  while (activity.children.length > KEPT) activity.lastElementChild.remove();
  activityEmpty.hidden = true;
}

function startLive() {
  liveCard.hidden = false;
  live = connectLive({
    onState(state, user) {
      liveState.dataset.state = state;
      liveState.textContent = STATE_TEXT[state] ?? state;
      if (user) presence.value = user.status;
    },
    onEvent(frame) {
      const text = describe(frame);
      if (text) show(text);
    },
    onResync() {
      show("Some activity was too old to replay; the lists are up to date again.");
    },
    onSessionEnded() {
      loadMe();
    },
    onFrame(frame) {
      if (frame.type === "error") show(`Not done: ${frame.error.message}`);
    },
  });
}

presence.addEventListener("change", () => {
  if (!live || !live.send({ type: "presence", status: presence.value })) {
    show("Not connected: the status will be set once the console is live again.");
  }
});

async function logout() {
  signOut.disabled = true;
  let response;
  try {
    response = await fetch("/api/auth/logout", {
      method: "POST",
      headers: { "X-CSRF-Token": csrfToken ?? "", Accept: "application/json" },
      credentials: "same-origin",
    });
  } catch {
    response = null;
  }
  // 401: the session had already ended, which is what signing out wanted.
  if (response && (response.ok || response.status === 401)) {
    if (live) live.stop();
    sessionStorage.clear();
    toLogin();
    return;
  }
  status.textContent = "Signing out did not work. Please try again.";
  signOut.disabled = false;
}

signOut.addEventListener("click", logout);
loadMe();
