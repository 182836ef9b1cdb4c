// Every string a person reads comes from a message catalogue (static/i18n/<language>.js): English is
// complete and the fallback for any key another catalogue lacks. The language is the person's choice
// (kept in this browser), else the browser's; dates, times and durations go through Intl in that language
// and the tenant's time zone.

import en from "./i18n/en.js";
import ptBR from "./i18n/pt-BR.js";

export const LANGUAGES = { en: "English", "pt-BR": "Português (Brasil)" };
const CATALOGUES = { en, "pt-BR": ptBR };
const CHOICE_KEY = "fiv.language";

let language = "en";
let timeZone = "UTC";
let plurals = new Intl.PluralRules("en");

function fromBrowser() {
  for (const wanted of navigator.languages ?? [navigator.language]) {
    if (!wanted) continue;
    if (CATALOGUES[wanted]) return wanted;
    const base = wanted.split("-")[0];
    const close = Object.keys(CATALOGUES).find((known) => known.split("-")[0] === base);
    if (close) return close;
  }
  return "en";
}

export function chosenLanguage() {
  const stored = window.localStorage.getItem(CHOICE_KEY);
  return stored && CATALOGUES[stored] ? stored : fromBrowser();
}

export function setup({ zone }) {
  language = chosenLanguage();
  timeZone = zone || "UTC";
  plurals = new Intl.PluralRules(language);
  document.documentElement.lang = language;
}

export function chooseLanguage(choice) {
  if (choice) window.localStorage.setItem(CHOICE_KEY, choice);
  else window.localStorage.removeItem(CHOICE_KEY);
}

export function currentLanguage() {
  return language;
}

// A catalogue entry is a string with {named} parts, or {one, other, …} chosen by `count`.
export function t(key, params = {}) {
  let entry = CATALOGUES[language]?.[key] ?? en[key];
  if (entry === undefined) return key;
  if (typeof entry === "object") entry = entry[plurals.select(params.count ?? 0)] ?? entry.other;
  return entry.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

// The page's own text: elements marked data-i18n (text), data-i18n-label (aria-label), data-i18n-title,
// data-i18n-placeholder.
export function translatePage(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t(node.dataset.i18nLabel));
  for (const node of root.querySelectorAll("[data-i18n-title]")) node.title = t(node.dataset.i18nTitle);
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
}

const formats = new Map();
function format(kind, options) {
  const key = `${language}|${timeZone}|${kind}`;
  if (!formats.has(key)) formats.set(key, new Intl.DateTimeFormat(language, { timeZone, ...options }));
  return formats.get(key);
}

export function formatTime(iso) {
  return iso ? format("time", { hour: "2-digit", minute: "2-digit" }).format(new Date(iso)) : "";
}

export function formatDateTime(iso) {
  return iso ? format("datetime", { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso)) : "";
}

export function formatDay(iso) {
  return format("day", { weekday: "long", day: "numeric", month: "long", year: "numeric" }).format(new Date(iso));
}

// The calendar day of an instant in the tenant's time zone: what day separators group by.
export function dayKey(iso) {
  return format("daykey", { year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date(iso));
}

// "3 min", "2 h 5 min", "1 d 4 h": a waiting time or a countdown, in the person's language.
export function formatDuration(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const part = (value, unit) => new Intl.NumberFormat(language, { style: "unit", unit, unitDisplay: "short" }).format(value);
  if (total < 60) return part(total, "second");
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return part(minutes, "minute");
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${part(hours, "hour")} ${part(minutes % 60, "minute")}`;
  return `${part(Math.floor(hours / 24), "day")} ${part(hours % 24, "hour")}`;
}
