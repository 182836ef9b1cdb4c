// The wallboard's tables: Queues and Agents, one row per queue and agent, updated in place as pushes
// arrive, filtered by queue. One timer ticks every waiting time and presence duration, and re-judges each
// queue's standing (its longest wait against the warning and breach thresholds: colour with an icon and
// a word, never colour alone). Counts open the conversations behind them (views/board-actions.js).

import { byId, clear, el, setText } from "../dom.js";
import { currentLanguage, formatDuration, t } from "../i18n.js";

const STANDING_ICON = { ok: "●", warning: "▲", breached: "■" };

export function standingOf(queue, now = Date.now()) {
  if (!queue.oldest_waiting_since) return "ok";
  const waited = (now - Date.parse(queue.oldest_waiting_since)) / 1000;
  if (waited > queue.sla_seconds) return "breached";
  if (waited > queue.sla_warning_seconds) return "warning";
  return "ok";
}

function seconds(value) {
  return value === null || value === undefined ? "—" : formatDuration(value);
}

function percent(value) {
  return value === null || value === undefined ? "—" : new Intl.NumberFormat(currentLanguage(), { style: "percent", maximumFractionDigits: 0 }).format(value);
}

export function mountBoard({ store, actions }) {
  const queuesBody = byId("queues-body");
  const agentsBody = byId("agents-body");
  const filter = byId("wallboard-filter");
  const status = byId("wallboard-status");
  const dayLabel = byId("wallboard-day");
  const queueRows = new Map();
  const agentRows = new Map();

  function countButton(label, onClick) {
    return el("button", { type: "button", class: "link count", text: "0", "aria-label": label, onclick: onClick });
  }

  function queueRow(queue) {
    const cells = {
      name: el("th", { scope: "row" }),
      waiting: countButton("", () => actions.listConversations({ queue: current(queue.queue_id), status: "waiting" })),
      longest: el("span", { class: "tick" }),
      standing: el("span", { class: "standing" }),
      serviceLevel: el("td"),
      inProgress: countButton("", () => actions.listConversations({ queue: current(queue.queue_id), status: "assigned" })),
      closed: el("td"),
      averageWait: el("td"),
      firstResponse: el("td"),
      hours: el("td"),
    };
    const tr = el("tr", { dataset: { id: queue.queue_id } },
      cells.name,
      el("td", { class: "number" }, cells.waiting),
      el("td", {}, cells.standing, " ", cells.longest),
      cells.serviceLevel,
      el("td", { class: "number" }, cells.inProgress),
      cells.closed,
      cells.averageWait,
      cells.firstResponse,
      cells.hours);
    return { tr, cells };
  }

  function current(queueId) {
    return store.state.queues.find((queue) => queue.queue_id === queueId);
  }

  function fillQueue(row, queue) {
    const { cells } = row;
    setText(cells.name, queue.active ? queue.name : t("wallboard.queue.inactive", { name: queue.name }));
    setText(cells.waiting, String(queue.waiting));
    cells.waiting.setAttribute("aria-label", t("wallboard.queue.waitingLabel", { count: queue.waiting, name: queue.name }));
    setText(cells.inProgress, String(queue.in_progress));
    cells.inProgress.setAttribute("aria-label", t("wallboard.queue.inProgressLabel", { count: queue.in_progress, name: queue.name }));
    cells.longest.dataset.since = queue.oldest_waiting_since ?? "";
    setText(cells.serviceLevel, queue.service_level_today === null ? "—" : t("wallboard.queue.serviceLevelValue", { share: percent(queue.service_level_today), answered: queue.answered_in_sla_today, total: queue.answered_today + queue.abandoned_today }));
    setText(cells.closed, String(queue.closed_today));
    setText(cells.averageWait, seconds(queue.average_wait_seconds_today));
    setText(cells.firstResponse, seconds(queue.average_first_response_seconds_today));
    setText(cells.hours, queue.open_now ? t("wallboard.queue.open") : t("wallboard.queue.closedHours"));
    row.tr.classList.toggle("hours-closed", !queue.open_now);
    tickQueue(row, queue, Date.now());
  }

  function tickQueue(row, queue, now) {
    const { cells } = row;
    const since = queue.oldest_waiting_since;
    setText(cells.longest, since ? formatDuration((now - Date.parse(since)) / 1000) : "—");
    const standing = standingOf(queue, now);
    if (row.tr.dataset.standing !== standing) {
      row.tr.dataset.standing = standing;
      clear(cells.standing).append(el("span", { "aria-hidden": "true", text: STANDING_ICON[standing] }), " ", t(`wallboard.standing.${standing}`));
    }
  }

  function agentRow(agent) {
    const choice = el("select", { "aria-label": "" },
      ...["online", "away", "offline"].map((value) => el("option", { value, text: t(`presence.${value}`) })));
    choice.addEventListener("change", () => actions.setStatus(currentAgent(agent.user_id), choice.value, () => fillAgent(agentRows.get(agent.user_id), currentAgent(agent.user_id))));
    const cells = {
      name: el("th", { scope: "row" }),
      presence: el("td"),
      since: el("td", { class: "tick" }),
      load: countButton("", () => actions.listConversations({ agent: currentAgent(agent.user_id), status: "assigned" })),
      handled: el("td"),
      choice,
    };
    const tr = el("tr", { dataset: { id: agent.user_id } },
      cells.name, cells.presence, cells.since, el("td", { class: "number" }, cells.load), cells.handled, el("td", {}, choice));
    return { tr, cells };
  }

  function currentAgent(userId) {
    return store.state.agents.find((agent) => agent.user_id === userId);
  }

  function fillAgent(row, agent) {
    const { cells } = row;
    setText(cells.name, agent.name);
    const state = agent.connected ? t(`presence.${agent.status}`) : t("wallboard.agent.disconnected", { status: t(`presence.${agent.status}`) });
    clear(cells.presence).append(el("span", { class: `presence-dot presence-${agent.connected ? agent.status : "gone"}`, "aria-hidden": "true" }), " ", state);
    cells.since.dataset.since = agent.presence_since ?? "";
    setText(cells.load, t("wallboard.agent.loadValue", { open: agent.open, capacity: agent.capacity }));
    cells.load.setAttribute("aria-label", t("wallboard.agent.loadLabel", { name: agent.name, open: agent.open, capacity: agent.capacity }));
    row.tr.classList.toggle("at-capacity", agent.open >= agent.capacity);
    setText(cells.handled, String(agent.handled_today));
    cells.choice.setAttribute("aria-label", t("wallboard.agent.statusOf", { name: agent.name }));
    if (document.activeElement !== cells.choice) cells.choice.value = agent.status;
    tickAgent(row, Date.now());
  }

  function tickAgent(row, now) {
    const since = row.cells.since.dataset.since;
    setText(row.cells.since, since ? formatDuration((now - Date.parse(since)) / 1000) : "—");
  }

  function visibleAgent(agent) {
    return !filter.value || agent.queue_ids.includes(filter.value);
  }

  function layout() {
    const { queues, agents } = store.state;
    const queueIds = new Set(queues.map((queue) => queue.queue_id));
    const agentIds = new Set(agents.map((agent) => agent.user_id));
    for (const id of [...queueRows.keys()]) if (!queueIds.has(id)) queueRows.delete(id);
    for (const id of [...agentRows.keys()]) if (!agentIds.has(id)) agentRows.delete(id);
    const queueNodes = queues.map((queue) => {
      const row = queueRows.get(queue.queue_id) ?? queueRow(queue);
      queueRows.set(queue.queue_id, row);
      fillQueue(row, queue);
      row.tr.hidden = Boolean(filter.value) && filter.value !== queue.queue_id;
      return row.tr;
    });
    clear(queuesBody).append(...queueNodes);
    const agentNodes = agents.map((agent) => {
      const row = agentRows.get(agent.user_id) ?? agentRow(agent);
      agentRows.set(agent.user_id, row);
      fillAgent(row, agent);
      row.tr.hidden = !visibleAgent(agent);
      return row.tr;
    });
    clear(agentsBody).append(...agentNodes);
    const chosen = filter.value;
    clear(filter).append(el("option", { value: "", text: t("wallboard.allQueues") }), ...queues.map((queue) => el("option", { value: queue.queue_id, text: queue.name })));
    filter.value = queues.some((queue) => queue.queue_id === chosen) ? chosen : "";
    if (store.state.day) {
      const day = new Intl.DateTimeFormat(currentLanguage(), { dateStyle: "full", timeZone: "UTC" }).format(new Date(`${store.state.day}T12:00:00Z`));
      setText(dayLabel, t("wallboard.day", { day, zone: store.state.timeZone }));
    }
    status.hidden = true;
  }

  function update(change) {
    if (change.type === "board") return layout();
    for (const id of change.queues) {
      const row = queueRows.get(id);
      const queue = current(id);
      if (row && queue) fillQueue(row, queue);
    }
    for (const id of change.agents) {
      const row = agentRows.get(id);
      const agent = currentAgent(id);
      if (row && agent) {
        fillAgent(row, agent);
        row.tr.hidden = !visibleAgent(agent);
      }
    }
  }

  store.subscribe(update);
  filter.addEventListener("change", () => {
    for (const queue of store.state.queues) queueRows.get(queue.queue_id).tr.hidden = Boolean(filter.value) && filter.value !== queue.queue_id;
    for (const agent of store.state.agents) agentRows.get(agent.user_id).tr.hidden = !visibleAgent(agent);
  });

  // One timer for every ticking figure.
  window.setInterval(() => {
    const now = Date.now();
    for (const queue of store.state.queues) {
      const row = queueRows.get(queue.queue_id);
      if (row) tickQueue(row, queue, now);
    }
    for (const [, row] of agentRows) tickAgent(row, now);
  }, 1000);

  const board = byId("wallboard");
  const fullscreen = byId("wallboard-fullscreen");
  fullscreen.addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else if (board.requestFullscreen) board.requestFullscreen().catch(() => board.classList.toggle("big"));
    else board.classList.toggle("big");
  });
  document.addEventListener("fullscreenchange", () => {
    setText(fullscreen, document.fullscreenElement ? t("wallboard.exitFullscreen") : t("wallboard.fullscreen"));
  });
}
