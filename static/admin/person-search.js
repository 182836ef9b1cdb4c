// A search-as-you-type field for one person of the tenant, in the ARIA combobox pattern: a labelled text
// field that owns a listbox of the people matching what is typed (part of a name or an email, read from
// `/api/users?q=…`, one short page at a time), so a tenant of a thousand agents is never loaded whole to
// pick one. Arrow keys move through the options, Enter or a click chooses, Escape closes the list.

import * as api from "../api.js";
import { clear, el, setText } from "../dom.js";
import { t } from "../i18n.js";
import { roleName } from "./kit.js";

const SHOWN = 20;
const PAUSE_MS = 200;

// `label`: the field's accessible name (the caller's <label for=id> gives it too); `query`: more filters of
// /api/users (e.g. disabled: false); `fixed`: choices offered before the people ([{id, name}], e.g.
// "Anyone"); `note(person)`: a word shown after a person (e.g. already a member), or null.
export function personSearch({ id, label, query = {}, fixed = [], note = () => null, onChoose = () => {} }) {
  const listId = `${id}-options`;
  const input = el("input", {
    id,
    type: "text",
    role: "combobox",
    autocomplete: "off",
    spellcheck: "false",
    "aria-autocomplete": "list",
    "aria-expanded": "false",
    "aria-controls": listId,
    "aria-describedby": `${id}-found`,
    placeholder: t("admin.search.placeholder"),
  });
  const list = el("ul", { id: listId, role: "listbox", class: "search-options", "aria-label": label, hidden: true });
  const found = el("p", { id: `${id}-found`, class: "hint", "aria-live": "polite" });
  let options = [];
  let active = -1;
  let chosen = null;
  let asked = 0;
  let timer = null;

  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function highlight(index) {
    active = index;
    options.forEach((option, n) => option.node.setAttribute("aria-selected", String(n === index)));
    if (index < 0) {
      input.removeAttribute("aria-activedescendant");
      return;
    }
    input.setAttribute("aria-activedescendant", options[index].node.id);
    options[index].node.scrollIntoView({ block: "nearest" });
  }

  function choose(choice) {
    chosen = { id: choice.id, name: choice.name };
    input.value = choice.name;
    close();
    setText(found, "");
    onChoose(chosen);
  }

  function show(choices, more) {
    options = choices.map((choice, n) => {
      const extra = choice.person ? note(choice.person) : null;
      const text = choice.person ? `${choice.name} (${roleName(choice.person.role)}) · ${choice.person.email}` : choice.name;
      const node = el("li", { id: `${listId}-${n}`, role: "option", "aria-selected": "false", text: extra ? `${text} · ${extra}` : text });
      // Chosen on mousedown, before the field loses its focus to the click.
      node.addEventListener("mousedown", (event) => {
        event.preventDefault();
        choose(choice);
      });
      return { ...choice, node };
    });
    clear(list).append(...options.map((o) => o.node));
    list.hidden = options.length === 0;
    input.setAttribute("aria-expanded", String(options.length > 0));
    active = -1;
    input.removeAttribute("aria-activedescendant");
    setText(found, options.length === 0 ? t("admin.search.none") : more > 0 ? t("admin.search.more", { count: more }) : "");
  }

  async function search() {
    const mine = ++asked;
    const text = input.value.trim();
    const lowered = text.toLowerCase();
    const offered = fixed.filter((f) => !text || f.name.toLowerCase().includes(lowered));
    let page;
    try {
      page = await api.getPage("/api/users", { ...query, q: text || undefined, limit: SHOWN });
    } catch {
      if (mine === asked) setText(found, t("admin.search.failed"));
      return;
    }
    if (mine !== asked || document.activeElement !== input) return;
    const people = page.data.map((person) => ({ id: person.id, name: person.name, person }));
    show([...offered, ...people], (page.pagination?.total ?? people.length) - people.length);
  }

  input.addEventListener("input", () => {
    chosen = null;
    window.clearTimeout(timer);
    timer = window.setTimeout(search, PAUSE_MS);
  });
  input.addEventListener("focus", () => {
    if (!chosen) search();
  });
  input.addEventListener("blur", () => {
    asked += 1;
    close();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (list.hidden) {
        search();
        return;
      }
      const step = event.key === "ArrowDown" ? 1 : -1;
      highlight((active + step + options.length) % options.length);
    } else if (event.key === "Enter" && !list.hidden && active >= 0) {
      event.preventDefault();
      choose(options[active]);
    } else if (event.key === "Escape" && !list.hidden) {
      // The list closes; the dialog around the field stays open.
      event.preventDefault();
      event.stopPropagation();
      close();
    }
  });

  return {
    input,
    row: el("div", { class: "person-search" }, input, list, found),
    // The choice made ({id, name}), or null while what is typed chooses nobody.
    value: () => chosen,
    text: () => input.value.trim(),
    set(choice) {
      chosen = choice;
      input.value = choice?.name ?? "";
    },
  };
}
