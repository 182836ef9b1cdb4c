// The one way the console talks to /api: JSON in and out, the CSRF header on every change, the
// `{success, data, error, pagination}` envelope unwrapped, a signed-out answer sent to /login, and a
// busy server's `Retry-After` honoured (for reads, which are safe to repeat).

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = error?.code ?? null;
    this.details = error?.details ?? null;
  }
}

let csrfToken = null;
const RETRIES = 3;

export function setCsrfToken(token) {
  csrfToken = token;
}

function url(path, query) {
  const address = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") address.searchParams.set(key, String(value));
  }
  return address.pathname + address.search;
}

// The sign-in page, which brings the person back to this page afterwards.
export function loginAddress() {
  const here = window.location.pathname + window.location.search;
  return here === "/" ? "/login" : `/login?${new URLSearchParams({ next: here })}`;
}

function signedOut() {
  window.location.assign(loginAddress());
}

const sleep = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));

export async function request(method, path, { query, body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken ?? "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  for (let attempt = 0; ; attempt += 1) {
    let response;
    try {
      response = await fetch(url(path, query), {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, { code: "UNREACHABLE", message: "the server cannot be reached" });
    }
    if (response.status === 401) {
      signedOut();
      throw new ApiError(401, { code: "UNAUTHENTICATED", message: "signed out" });
    }
    const wait = Number.parseFloat(response.headers.get("Retry-After") ?? "");
    if (method === "GET" && (response.status === 429 || response.status === 503) && attempt < RETRIES) {
      await sleep(Number.isFinite(wait) ? Math.min(wait, 30) * 1000 : 1000 * 2 ** attempt);
      continue;
    }
    let envelope = null;
    try {
      envelope = await response.json();
    } catch {
      envelope = null;
    }
    if (!response.ok || !envelope?.success) throw new ApiError(response.status, envelope?.error);
    return { data: envelope.data, pagination: envelope.pagination ?? null };
  }
}

export const get = async (path, query) => (await request("GET", path, { query })).data;
export const getPage = (path, query) => request("GET", path, { query });
// The API's largest page, and how many of a list a page loads whole at most (names for ids, pickers).
export const PAGE_MAX = 100;
export const ALL_CAP = 5000;
const PARALLEL = 4;

// Every page of a list (following `pagination` until it says no more), in order and each item once, up to
// `cap` items. `total` is the server's count: above `cap`, `complete` is false and the page says so.
export async function getAll(path, query = {}, { cap = ALL_CAP, key = (item) => item.id } = {}) {
  const first = await getPage(path, { ...query, page: 1, limit: PAGE_MAX });
  const total = first.pagination?.total ?? first.data.length;
  const pages = first.pagination?.hasNext ? Math.ceil(Math.min(total, cap) / PAGE_MAX) : 1;
  const answers = [first];
  for (let start = 2; start <= pages; start += PARALLEL) {
    const batch = [];
    for (let page = start; page < start + PARALLEL && page <= pages; page += 1) batch.push(getPage(path, { ...query, page, limit: PAGE_MAX }));
    answers.push(...(await Promise.all(batch)));
  }
  // A row added or removed between two pages shifts the rest: the same item may come twice.
  const seen = new Set();
  const items = [];
  for (const { data } of answers) {
    for (const item of data) {
      if (items.length >= cap || seen.has(key(item))) continue;
      seen.add(key(item));
      items.push(item);
    }
  }
  return { items, total, complete: total <= cap };
}

export const post = async (path, body = undefined) => (await request("POST", path, { body })).data;
export const put = async (path, body = undefined) => (await request("PUT", path, { body })).data;
export const patch = async (path, body) => (await request("PATCH", path, { body })).data;
export const del = async (path) => (await request("DELETE", path)).data;

// A file upload (multipart `file`) with progress: fetch cannot report upload progress, XMLHttpRequest can.
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("X-CSRF-Token", csrfToken ?? "");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, { code: "UNREACHABLE", message: "upload failed" })));
    xhr.addEventListener("load", () => {
      if (xhr.status === 401) {
        signedOut();
        reject(new ApiError(401, null));
        return;
      }
      let envelope = null;
      try {
        envelope = JSON.parse(xhr.responseText);
      } catch {
        envelope = null;
      }
      if (xhr.status >= 300 || !envelope?.success) reject(new ApiError(xhr.status, envelope?.error));
      else resolve(envelope.data);
    });
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}
