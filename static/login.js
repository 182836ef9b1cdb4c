// The sign-in form: posts the workspace (where the page asks for it), email and password as JSON to
// /api/auth/login and goes to the console. Every failure becomes a sentence for people in the live region;
// the server's own text (which could be a stack trace from a proxy, or raw JSON) is never shown.
//
// The workspace comes from `/login?workspace=...` (a link a company hands out), else from the last one
// that signed in on this browser; a deployment with a single tenant has no workspace field at all.

const form = document.getElementById("login-form");
const workspace = document.getElementById("login-workspace");
const email = document.getElementById("login-email");
const password = document.getElementById("login-password");
const submit = document.getElementById("login-submit");
const message = document.getElementById("login-message");

const WORKSPACE_STORAGE_KEY = "fiv.workspace";
const WRONG_CREDENTIALS = workspace
  ? "The workspace, email or password is wrong."
  : "The email or password is wrong.";
const MISSING = workspace ? "Enter your workspace, email and password." : "Enter your email and password.";
const BAD_WORKSPACE = "A workspace name has only letters, digits and hyphens.";
const GENERIC_FAILURE = "Signing in did not work this time. Please try again in a moment.";
const UNREACHABLE = "The server cannot be reached. Check your connection and try again.";

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
  if (!Number.isFinite(seconds) || seconds <= 0) {
    return "Too many sign-in attempts. Please wait a few minutes and try again.";
  }
  const unit = seconds === 1 ? "second" : "seconds";
  return `Too many sign-in attempts. Please wait ${seconds} ${unit} and try again.`;
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
    window.location.assign("/");
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

if (workspace) {
  workspace.value = new URLSearchParams(window.location.search).get("workspace") || remembered() || "";
}
(workspace && !workspace.value ? workspace : email).focus();
form.addEventListener("submit", signIn);
// The button starts disabled so that, without this script, the form cannot be sent anywhere.
submit.disabled = false;
