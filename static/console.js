// The console shell: who is signed in (from GET /api/me) and signing out. Names are shown with
// textContent only, so a name holding markup stays text.

const status = document.getElementById("console-status");
const panel = document.getElementById("console-user");
const nameField = document.getElementById("user-name");
const roleField = document.getElementById("user-role");
const signOut = document.getElementById("sign-out");

let csrfToken = null;

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
  status.textContent = "";
  panel.hidden = false;
}

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
    toLogin();
    return;
  }
  status.textContent = "Signing out did not work. Please try again.";
  signOut.disabled = false;
}

signOut.addEventListener("click", logout);
loadMe();
