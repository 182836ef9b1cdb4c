// The sign-in form: posts the email and password as JSON to /api/auth/login and goes to the console.
// Every failure becomes a sentence for people in the live region; the server's own text (which could be a
// stack trace from a proxy, or raw JSON) is never shown.

const form = document.getElementById("login-form");
const email = document.getElementById("login-email");
const password = document.getElementById("login-password");
const submit = document.getElementById("login-submit");
const message = document.getElementById("login-message");

const WRONG_CREDENTIALS = "The email or password is wrong.";
const GENERIC_FAILURE = "Signing in did not work this time. Please try again in a moment.";
const UNREACHABLE = "The server cannot be reached. Check your connection and try again.";

function show(text) {
  message.textContent = text;
}

function waitMessage(retryAfter) {
  const seconds = Number.parseInt(retryAfter ?? "", 10);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    return "Too many sign-in attempts. Please wait a few minutes and try again.";
  }
  const unit = seconds === 1 ? "second" : "seconds";
  return `Too many sign-in attempts. Please wait ${seconds} ${unit} and try again.`;
}

async function signIn(event) {
  event.preventDefault();
  if (!email.value.trim() || !password.value) {
    show("Enter your email and password.");
    return;
  }
  submit.disabled = true;
  show("");
  let response;
  try {
    response = await fetch("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ email: email.value.trim(), password: password.value }),
      credentials: "same-origin",
    });
  } catch {
    show(UNREACHABLE);
    submit.disabled = false;
    return;
  }
  if (response.ok) {
    window.location.assign("/");
    return;
  }
  if (response.status === 401) {
    show(WRONG_CREDENTIALS);
    password.select();
  } else if (response.status === 429) {
    show(waitMessage(response.headers.get("Retry-After")));
  } else {
    show(GENERIC_FAILURE);
  }
  submit.disabled = false;
}

form.addEventListener("submit", signIn);
// The button starts disabled so that, without this script, the form cannot be sent anywhere.
submit.disabled = false;
