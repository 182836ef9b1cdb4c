// WhatsApp numbers (admins): connecting one (WhatsApp is asked first whether the access token may use the
// number: the number decides which tenant its customers' messages reach), where its conversations wait,
// its access token (write-only: replaced or removed, never shown) and its business account for templates.

import * as api from "../api.js";
import { clear, el, toast } from "../dom.js";
import { t } from "../i18n.js";
import { Fields, button, describe, field, formDialog, header, pager, table, when } from "./kit.js";

// What a number can do now, in words.
function state(channel) {
  if (!channel.active) return t("admin.channels.off");
  if (!channel.has_access_token) return t("admin.channels.receiveOnly");
  return channel.waba_id ? t("admin.channels.ready") : t("admin.channels.noTemplates");
}

export async function render(root, me, page = 1) {
  const [{ data, pagination }, { items: queues }] = await Promise.all([api.getPage("/api/channels", { page, limit: 25 }), api.getAll("/api/queues")]);
  const redraw = (goTo = page) => render(root, me, goTo).catch((problem) => toast(describe(problem)));
  const queueName = new Map(queues.map((q) => [q.id, q.name]));
  const columns = [
    { label: t("admin.channels.number"), cell: (c) => c.display_number },
    { label: t("admin.channels.phoneNumberId"), cell: (c) => el("code", { text: c.phone_number_id }) },
    { label: t("admin.channels.waba"), cell: (c) => c.waba_id ?? "—" },
    { label: t("admin.channels.queue"), cell: (c) => queueName.get(c.default_queue_id) ?? "—" },
    { label: t("admin.channels.state"), cell: (c) => state(c) },
    { label: t("admin.channels.since"), cell: (c) => when(c.created_at) },
    { label: t("admin.actions"), cell: (c) => button(t("admin.edit"), () => edit(c, queues, redraw), { secondary: true, label: t("admin.editNamed", { name: c.display_number }) }) },
  ];
  const connect = button(t("admin.channels.connect"), () => (queues.length ? edit(null, queues, redraw) : toast(t("admin.channels.needQueue"))));
  clear(root).append(
    header(t("admin.nav.channels"), t("admin.channels.intro"), connect),
    table({ name: t("admin.nav.channels"), columns, items: data, empty: t("admin.channels.empty") }),
    pager(pagination, redraw) ?? "",
  );
}

function edit(channel, queues, redraw) {
  const queueOptions = queues.map((q) => [q.id, q.name]);
  const list = channel
    ? [
        field({ name: "display_number", label: t("admin.channels.number"), value: channel.display_number, required: true }),
        field({ name: "default_queue_id", label: t("admin.channels.queue"), kind: "select", value: channel.default_queue_id, options: queueOptions, hint: t("admin.channels.queueHint") }),
        field({ name: "waba_id", label: t("admin.channels.waba"), value: channel.waba_id, hint: t("admin.channels.wabaHint") }),
        field({
          name: "access_token",
          label: t("admin.channels.newToken"),
          kind: "password",
          hint: channel.has_access_token ? t("admin.channels.tokenKept") : t("admin.channels.tokenMissing"),
          attrs: { autocomplete: "off" },
        }),
        channel.has_access_token ? field({ name: "remove_token", label: t("admin.channels.removeToken"), kind: "checkbox", value: false, hint: t("admin.channels.removeTokenHint") }) : null,
        field({ name: "active", label: t("admin.channels.isActive"), kind: "checkbox", value: channel.active, hint: t("admin.channels.activeHint") }),
      ]
    : [
        field({ name: "phone_number_id", label: t("admin.channels.phoneNumberId"), required: true, hint: t("admin.channels.phoneNumberIdHint"), attrs: { inputmode: "numeric" } }),
        field({ name: "display_number", label: t("admin.channels.number"), required: true, hint: t("admin.channels.numberHint") }),
        field({ name: "waba_id", label: t("admin.channels.waba"), hint: t("admin.channels.wabaHint"), attrs: { inputmode: "numeric" } }),
        field({ name: "access_token", label: t("admin.channels.token"), kind: "password", required: true, hint: t("admin.channels.tokenHint"), attrs: { autocomplete: "off" } }),
        field({ name: "default_queue_id", label: t("admin.channels.queue"), kind: "select", options: queueOptions, hint: t("admin.channels.queueHint") }),
      ];
  const fields = new Fields(list);
  formDialog({
    title: channel ? t("admin.channels.editTitle", { name: channel.display_number }) : t("admin.channels.connect"),
    intro: channel ? null : t("admin.channels.verifyIntro"),
    fields,
    wide: true,
    submitLabel: channel ? t("admin.save") : t("admin.channels.connectButton"),
    async submit(f) {
      const value = (name) => f.input(name).value.trim();
      if (channel) {
        const body = { display_number: value("display_number"), default_queue_id: value("default_queue_id"), waba_id: value("waba_id") || null, active: f.input("active").checked };
        if (value("access_token")) body.access_token = value("access_token");
        else if (f.byName.has("remove_token") && f.input("remove_token").checked) body.access_token = null;
        await api.patch(`/api/channels/${channel.id}`, body);
      } else {
        const body = { phone_number_id: value("phone_number_id"), display_number: value("display_number"), access_token: value("access_token"), default_queue_id: value("default_queue_id") };
        if (value("waba_id")) body.waba_id = value("waba_id");
        await api.post("/api/channels", body);
        toast(t("admin.channels.connected"));
      }
      await redraw();
    },
  });
}
