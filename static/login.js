// The sign-in form: posts the workspace (where the page asks for it), email and password as JSON to
// /api/auth/login and goes to the console. Every failure becomes a sentence for people in the live region;
// the server's own text (which could be a stack trace from a proxy, or raw JSON) is never shown.
//
// The workspace comes from `/login?workspace=...` (a link a company hands out), else from the last one
// that signed in on this browser; a deployment with a single tenant has no workspace field at all. Its
// words come from the message catalogues, in the browser's language (or the one chosen in the console).

import { setup, t, translatePage } from "./i18n.js";

setup({ zone: "UTC" });
translatePage();

const form = document.getElementById("login-form");
const workspace = document.getElementById("login-workspace");
const email = document.getElementById("login-email");
const password = document.getElementById("login-password");
const submit = document.getElementById("login-submit");
const message = document.getElementById("login-message");

const WORKSPACE_STORAGE_KEY = "fiv.workspace";
const WRONG_CREDENTIALS = t(workspace ? "login.wrongWithWorkspace" : "login.wrong");
const MISSING = t(workspace ? "login.missingWithWorkspace" : "login.missing");
const BAD_WORKSPACE = t("login.badWorkspace");
const GENERIC_FAILURE = t("login.failed");
const UNREACHABLE = t("login.unreachable");

function show(text) {
  message.textContent = text;
}

function remembered() {
  try {
    return window.localStorage.getItem(WORKSPACE_STORAGE_KEY);
  } catch {
    // Storage can be switched off; the field then simply starts empty.
    return null;
  }
}

function remember(value) {
  try {
    window.localStorage.setItem(WORKSPACE_STORAGE_KEY, value);
  } catch {
    // Not remembered this time; signing in still worked.
  }
}

function waitMessage(retryAfter) {
  const seconds = Number.parseInt(retryAfter ?? "", 10);
  if (!Number.isFinite(seconds) || seconds <= 0) return t("login.tooManyMinutes");
  return t("login.tooMany", { count: seconds });
}

async function isWorkspaceRefused(response) {
  try {
    const body = await response.json();
    return (body?.error?.details ?? []).some((detail) => detail?.field === "body.workspace");
  } catch {
    return false;
  }
}

async function signIn(event) {
  event.preventDefault();
  const typedWorkspace = workspace ? workspace.value.trim().toLowerCase() : null;
  if ((workspace && !typedWorkspace) || !email.value.trim() || !password.value) {
    show(MISSING);
    return;
  }
  submit.disabled = true;
  show("");
  const credentials = { email: email.value.trim(), password: password.value };
  if (typedWorkspace) credentials.workspace = typedWorkspace;
  let response;
  try {
    response = await fetch("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(credentials),
      credentials: "same-origin",
    });
  } catch {
    show(UNREACHABLE);
    submit.disabled = false;
    return;
  }
  if (response.ok) {
    if (typedWorkspace) remember(typedWorkspace);
    window.location.assign(afterSignIn());
    return;
  }
  if (response.status === 401) {
    show(WRONG_CREDENTIALS);
    password.select();
  } else if (response.status === 429) {
    show(waitMessage(response.headers.get("Retry-After")));
  } else if (response.status === 400 && workspace && (await isWorkspaceRefused(response))) {
    show(BAD_WORKSPACE);
    workspace.focus();
  } else {
    show(GENERIC_FAILURE);
  }
  submit.disabled = false;
}

// Where the person was going when asked to sign in: a path of this site only, never another origin.
function afterSignIn() {
  const next = new URLSearchParams(window.location.search).get("next") || "";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}

if (workspace) {
  workspace.value = new URLSearchParams(window.location.search).get("workspace") || remembered() || "";
}
(workspace && !workspace.value ? workspace : email).focus();
form.addEventListener("submit", signIn);
// The button starts disabled so that, without this script, the form cannot be sent anywhere.
submit.disabled = false;
