// The one DOM helper every view uses. Data from the server only ever becomes text nodes or attribute
// values here (never markup), so a customer's `<img onerror=…>` stays text; links are made only for
// http(s) addresses, and open without handing this page to the site they lead to.

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child);
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function byId(id) {
  return document.getElementById(id);
}

const LINK = /\bhttps?:\/\/[^\s<>"']+/gi;

// Text with its http(s) links clickable; everything else stays text.
export function linkify(text) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(LINK)) {
    // A sentence's closing punctuation is not part of the address.
    const address = match[0].replace(/[.,;:!?)\]]+$/, "");
    fragment.append(text.slice(last, match.index));
    let url;
    try {
      url = new URL(address);
    } catch {
      url = null;
    }
    if (url && (url.protocol === "http:" || url.protocol === "https:")) {
      fragment.append(el("a", { href: url.href, target: "_blank", rel: "noopener noreferrer", text: address }));
    } else {
      fragment.append(address);
    }
    last = match.index + address.length;
  }
  fragment.append(text.slice(last));
  return fragment;
}

// Keeps a live region's text in step without re-announcing what has not changed.
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// A short message that goes by itself (read out: role alert), for a problem no form field owns.
export function toast(text) {
  const node = el("div", { class: "toast", role: "alert", text });
  document.body.append(node);
  window.setTimeout(() => node.remove(), 6000);
}
