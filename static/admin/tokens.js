// API tokens (admins): integrations' keys, each with a role and an optional expiry. The secret is shown
// once, right after it is made, with a button to copy it; afterwards only its name, who made it and when
// it was last used are known. Revoking asks first: whatever uses the token stops working at once.

import * as api from "../api.js";
import { byId, clear, el, toast } from "../dom.js";
import { t } from "../i18n.js";
import { openDialog } from "../views/dialogs.js";
import { Fields, button, confirmDialog, describe, field, formDialog, header, instantIn, pager, roleName, table, when } from "./kit.js";

function stateOf(token) {
  if (token.revoked_at) return t("admin.tokens.revoked", { when: when(token.revoked_at) });
  if (token.expires_at && new Date(token.expires_at) <= new Date()) return t("admin.tokens.expired");
  return t("admin.tokens.active");
}

function madeBy(token) {
  if (token.creator) return token.creator_active_admin ? token.creator.name : t("admin.tokens.formerAdmin", { name: token.creator.name });
  if (token.created_by_token) return t("admin.tokens.byToken", { name: token.created_by_token.name });
  return "—";
}

export async function render(root, me, page = 1) {
  const { data, pagination } = await api.getPage("/api/tokens", { page, limit: 25 });
  const redraw = (goTo = page) => render(root, me, goTo).catch((problem) => toast(describe(problem)));
  const columns = [
    { label: t("admin.tokens.name"), cell: (k) => k.name },
    { label: t("admin.tokens.role"), cell: (k) => roleName(k.role) },
    { label: t("admin.tokens.madeBy"), cell: (k) => madeBy(k) },
    { label: t("admin.tokens.created"), cell: (k) => when(k.created_at) },
    { label: t("admin.tokens.expires"), cell: (k) => (k.expires_at ? when(k.expires_at) : t("admin.tokens.never")) },
    { label: t("admin.tokens.lastUsed"), cell: (k) => (k.last_used_at ? when(k.last_used_at) : t("admin.tokens.unused")) },
    { label: t("admin.tokens.state"), cell: (k) => stateOf(k) },
    {
      label: t("admin.actions"),
      cell: (k) => (k.revoked_at ? "" : button(t("admin.tokens.revoke"), () => revoke(k, redraw), { secondary: true, danger: true, label: t("admin.tokens.revokeNamed", { name: k.name }) })),
    },
  ];
  clear(root).append(
    header(t("admin.nav.tokens"), t("admin.tokens.intro"), button(t("admin.tokens.add"), () => create(me, redraw))),
    table({ name: t("admin.nav.tokens"), columns, items: data, empty: t("admin.tokens.empty") }),
    pager(pagination, redraw) ?? "",
  );
}

function create(me, redraw) {
  const fields = new Fields([
    field({ name: "name", label: t("admin.tokens.name"), required: true, hint: t("admin.tokens.nameHint") }),
    field({ name: "role", label: t("admin.tokens.role"), kind: "select", value: "agent", options: ["agent", "supervisor", "admin"].map((r) => [r, roleName(r)]), hint: t("admin.tokens.roleHint") }),
    field({ name: "expires_at", label: t("admin.tokens.expiresAt"), kind: "datetime-local", hint: t("admin.tokens.expiresHint", { zone: me.time_zone }) }),
  ]);
  formDialog({
    title: t("admin.tokens.add"),
    fields,
    submitLabel: t("admin.tokens.create"),
    async submit(f) {
      const body = { name: f.input("name").value, role: f.input("role").value };
      if (f.input("expires_at").value) body.expires_at = instantIn(me.time_zone, f.input("expires_at").value).toISOString();
      const made = await api.post("/api/tokens", body);
      await redraw();
      // Once this dialog has closed, the secret gets a dialog of its own.
      byId("dialog").addEventListener("close", () => showSecret(made), { once: true });
    },
  });
}

function showSecret(token) {
  const secret = el("input", { id: "token-secret", type: "text", readOnly: true, value: token.secret, class: "secret", spellcheck: false });
  const copied = el("p", { class: "hint", role: "status" });
  const copy = button(t("admin.tokens.copy"), async () => {
    secret.select();
    try {
      await navigator.clipboard.writeText(token.secret);
      copied.textContent = t("admin.tokens.copied");
    } catch {
      copied.textContent = t("admin.tokens.copyByHand");
    }
  });
  openDialog({
    title: t("admin.tokens.secretTitle", { name: token.name }),
    wide: true,
    body: [
      el("p", { class: "warning", role: "alert", text: t("admin.tokens.secretWarning") }),
      el("label", { for: "token-secret", text: t("admin.tokens.secret") }),
      el("div", { class: "secret-row" }, secret, copy),
      copied,
    ],
  });
}

function revoke(token, redraw) {
  confirmDialog({
    title: t("admin.tokens.revokeTitle", { name: token.name }),
    text: t("admin.tokens.revokeText"),
    confirmLabel: t("admin.tokens.revoke"),
    async action() {
      await api.del(`/api/tokens/${token.id}`);
      await redraw();
    },
  });
}
