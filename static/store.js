// The console's client store: a REST snapshot, then every socket event applied to it (`apply`), the way
// Zulip's register → fetch → apply works. Views never fetch for themselves what an event can bring: they
// render from here and re-render when told (`subscribe`). Events that arrive while a snapshot is loading
// wait, and are applied on top of it in order; applying an event the snapshot already holds changes
// nothing (conversations are replaced whole; a message is counted once, by id and time).

import * as api from "./api.js";

const PAGE = 50;
const HISTORY_PAGE = 50;

// The console's lists. Each is a REST query; the same query decides, for a conversation an event brings,
// whether it belongs in the list, so a list stays live without asking the server again.
export const TABS = {
  mine: { sort: "-last_message_at", query: (me) => ({ status: "assigned", agent_id: me.user.id }) },
  waiting: { sort: "enqueued_at", query: () => ({ status: "waiting" }) },
  all: { sort: "-last_message_at", query: (_me, filters) => ({ ...filters }), staffOnly: true },
};

export const isStaff = (me) => me.role === "admin" || me.role === "supervisor";

// Microseconds since the epoch: ISO times from the server sort by instant, whatever their precision.
export function instant(iso) {
  if (!iso) return null;
  const fraction = /\.(\d+)/.exec(iso)?.[1] ?? "";
  return Date.parse(iso) * 1000 + Number.parseInt((fraction + "000000").slice(3, 6), 10);
}

function compareBy(sort) {
  const descending = sort.startsWith("-");
  const field = descending ? sort.slice(1) : sort;
  // PostgreSQL's order: nulls come first when descending, last when ascending; the id breaks ties.
  return (a, b) => {
    const x = instant(a[field]);
    const y = instant(b[field]);
    let order;
    if (x === y) order = a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
    else if (x === null) order = 1;
    else if (y === null) order = -1;
    else order = x < y ? -1 : 1;
    return descending ? -order : order;
  };
}

function matches(query, conversation, myQueues) {
  if (query.status && conversation.status !== query.status) return false;
  if (query.agent_id && conversation.agent_id !== query.agent_id) return false;
  if (query.queue_id && conversation.queue_id !== query.queue_id) return false;
  if (query.contact_id && conversation.contact.id !== query.contact_id) return false;
  if (query.label_id && !conversation.labels.some((label) => label.id === query.label_id)) return false;
  // An agent's sight: their own conversations and their queues' waiting ones.
  if (myQueues && conversation.status === "waiting" && !myQueues.has(conversation.queue_id)) return false;
  return true;
}

export function createStore(me) {
  const listeners = new Set();
  const state = {
    me,
    conversations: new Map(),
    lists: new Map(),
    histories: new Map(),
    notes: new Map(),
    presence: new Map(),
    queues: new Map(),
    labels: new Map(),
    canned: [],
    filters: {},
    loading: false,
  };
  let pending = null; // events held while a snapshot loads
  let generation = 0;

  function emit(change) {
    for (const listener of listeners) listener(change);
  }

  function myQueues() {
    return isStaff(state.me) ? null : new Set(state.queues.keys());
  }

  function listQuery(tab) {
    const definition = TABS[tab];
    return { ...definition.query(state.me, state.filters), sort: definition.sort };
  }

  async function loadList(tab, { more = false } = {}) {
    const query = listQuery(tab);
    const current = state.lists.get(tab);
    const cursor = more ? current?.nextCursor : null;
    if (more && !cursor) return;
    const { data } = await api.getPage("/api/conversations", { ...query, limit: PAGE, cursor });
    const list = more && current ? current : { tab, query, ids: [], nextCursor: null };
    for (const conversation of data.items) {
      state.conversations.set(conversation.id, conversation);
      list.ids.push(conversation.id);
    }
    list.nextCursor = data.next_cursor;
    state.lists.set(tab, list);
  }

  async function loadHistory(conversationId, { older = false } = {}) {
    const history = state.histories.get(conversationId) ?? { messages: new Map(), nextCursor: null, complete: false };
    if (older && (history.complete || !history.nextCursor)) return history;
    const before = older ? history.nextCursor : undefined;
    const [{ data }, notes] = await Promise.all([
      api.getPage(`/api/conversations/${conversationId}/messages`, { limit: HISTORY_PAGE, before }),
      older ? null : api.get(`/api/conversations/${conversationId}/notes`, { limit: 100 }),
    ]);
    for (const message of data.items) history.messages.set(message.id, message);
    history.nextCursor = data.next_cursor;
    history.complete = data.next_cursor === null;
    state.histories.set(conversationId, history);
    if (notes) state.notes.set(conversationId, new Map(notes.map((note) => [note.id, note])));
    emit({ type: "history", conversationId });
    return history;
  }

  async function loadSnapshot() {
    const mine = ++generation;
    pending = pending ?? [];
    state.loading = true;
    emit({ type: "loading" });
    try {
      const staff = isStaff(state.me);
      const [queues, labels, canned] = await Promise.all([
        api.get("/api/queues", { limit: 100 }),
        api.get("/api/labels", { limit: 100 }),
        api.get("/api/canned-responses", { limit: 100 }),
      ]);
      const people = staff ? await api.get("/api/users", { limit: 100 }) : [state.me.user];
      if (mine !== generation) return;
      state.queues = new Map(queues.map((queue) => [queue.id, queue]));
      state.labels = new Map(labels.map((label) => [label.id, label]));
      state.canned = canned;
      state.presence = new Map(people.map((person) => [person.id, person]));
      state.conversations = new Map();
      state.lists = new Map();
      const tabs = Object.keys(TABS).filter((tab) => staff || !TABS[tab].staffOnly);
      await Promise.all(tabs.map((tab) => loadList(tab)));
      const open = [...state.histories.keys()];
      state.histories = new Map();
      state.notes = new Map();
      await Promise.all(open.map((id) => loadConversation(id)));
    } finally {
      if (mine === generation) {
        state.loading = false;
        const held = pending;
        pending = null;
        for (const frame of held) applyNow(frame);
        emit({ type: "snapshot" });
      }
    }
  }

  // One conversation that no list holds (opened from a search or the contact panel).
  async function loadConversation(conversationId) {
    try {
      const conversation = await api.get(`/api/conversations/${conversationId}`);
      state.conversations.set(conversation.id, conversation);
      await loadHistory(conversationId);
      return conversation;
    } catch (error) {
      if (error.status === 404) {
        state.conversations.delete(conversationId);
        return null;
      }
      throw error;
    }
  }

  function putConversation(conversation) {
    const before = state.conversations.get(conversation.id);
    state.conversations.set(conversation.id, conversation);
    return before;
  }

  function addMessage(conversationId, message) {
    const history = state.histories.get(conversationId);
    const known = history?.messages.has(message.id);
    if (history) history.messages.set(message.id, { ...history.messages.get(message.id), ...message });
    const conversation = state.conversations.get(conversationId);
    if (!conversation || known) return;
    const last = conversation.last_message;
    // Already counted when the conversation was read after this message was written.
    if (last && instant(last.created_at) >= instant(message.created_at)) return;
    const preview = { id: message.id, direction: message.direction, kind: message.kind, text: message.text, created_at: message.created_at };
    const updated = { ...conversation, last_message: preview };
    if (message.direction === "inbound" && message.kind !== "system") {
      updated.unread_count = (conversation.unread_count ?? 0) + 1;
      const at = message.sent_at ?? message.created_at;
      if (!conversation.last_inbound_at || instant(at) > instant(conversation.last_inbound_at)) {
        updated.last_inbound_at = at;
        updated.window_closes_at = new Date(Date.parse(at) + 24 * 3600 * 1000).toISOString();
      }
    }
    const at = message.direction === "inbound" ? (message.sent_at ?? message.created_at) : message.created_at;
    if (!conversation.last_message_at || instant(at) > instant(conversation.last_message_at)) updated.last_message_at = at;
    state.conversations.set(conversationId, updated);
  }

  function applyNow(frame) {
    const data = frame.data ?? {};
    const [kind] = frame.event.split(".");
    if (kind === "conversation") {
      const before = putConversation(data.conversation);
      emit({ type: "conversation", event: frame.event, conversation: data.conversation, before, from: data.from, reason: data.reason });
    } else if (frame.event === "message.created") {
      if (data.conversation) putConversation(data.conversation);
      addMessage(data.conversation_id, data.message);
      emit({ type: "message", event: frame.event, conversationId: data.conversation_id, message: data.message });
    } else if (frame.event === "message.status") {
      const history = state.histories.get(data.conversation_id);
      const message = history?.messages.get(data.message_id);
      if (message) history.messages.set(data.message_id, { ...message, status: data.status, error: data.error });
      emit({ type: "message", event: frame.event, conversationId: data.conversation_id });
    } else if (frame.event === "note.created") {
      const notes = state.notes.get(data.note.conversation_id);
      if (notes) notes.set(data.note.id, data.note);
      emit({ type: "note", conversationId: data.note.conversation_id, note: data.note });
    } else if (frame.event === "agent.presence") {
      const known = state.presence.get(data.user_id) ?? { id: data.user_id };
      state.presence.set(data.user_id, { ...known, name: data.name, role: data.role, status: data.status, connected: data.connected });
      if (state.me.user && data.user_id === state.me.user.id) state.me.user = { ...state.me.user, status: data.status, connected: data.connected };
      emit({ type: "presence", userId: data.user_id });
    } else if (frame.event === "queue.updated") {
      if (state.queues.has(data.queue.id) || isStaff(state.me)) state.queues.set(data.queue.id, data.queue);
      emit({ type: "queues" });
    } else if (frame.event === "queue.members_changed") {
      // Joining or leaving a queue changes which waiting conversations are in sight: read them again.
      if (state.me.user && data.user_id === state.me.user.id) loadSnapshot();
      emit({ type: "queues" });
    }
  }

  return {
    state,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    apply(frame) {
      if (pending) pending.push(frame);
      else applyNow(frame);
    },
    loadSnapshot,
    loadConversation,
    loadHistory,
    async loadMore(tab) {
      await loadList(tab, { more: true });
      emit({ type: "list", tab });
    },
    async setFilters(filters) {
      state.filters = filters;
      if (isStaff(state.me)) await loadList("all");
      emit({ type: "list", tab: "all" });
    },
    // The conversations of a list, in its order: those loaded, and those events brought that fall within
    // what was loaded (a conversation past the last loaded one waits for "more", as it would on the server).
    view(tab) {
      const list = state.lists.get(tab);
      if (!list) return [];
      const queues = myQueues();
      const compare = compareBy(list.query.sort);
      const inList = [...state.conversations.values()].filter((c) => matches(list.query, c, queues)).sort(compare);
      if (!list.nextCursor || list.ids.length === 0) return inList;
      const boundary = state.conversations.get(list.ids[list.ids.length - 1]);
      return inList.filter((c) => !boundary || compare(c, boundary) <= 0);
    },
    hasMore(tab) {
      return Boolean(state.lists.get(tab)?.nextCursor);
    },
    // Messages and notes of a conversation, oldest first.
    timeline(conversationId) {
      const history = state.histories.get(conversationId);
      const messages = history ? [...history.messages.values()].map((m) => ({ type: "message", at: instant(m.created_at), item: m })) : [];
      const notes = [...(state.notes.get(conversationId)?.values() ?? [])].map((n) => ({ type: "note", at: instant(n.created_at), item: n }));
      return [...messages, ...notes].sort((a, b) => a.at - b.at || (a.item.id < b.item.id ? -1 : 1));
    },
    history(conversationId) {
      return state.histories.get(conversationId);
    },
    forget(conversationId) {
      state.histories.delete(conversationId);
      state.notes.delete(conversationId);
    },
    // A change the person made themselves, known before its event arrives.
    put(conversation) {
      putConversation(conversation);
      emit({ type: "conversation", event: "local", conversation });
    },
    putMessage(message) {
      addMessage(message.conversation_id, message);
      emit({ type: "message", event: "local", conversationId: message.conversation_id, message });
    },
    markedRead(conversationId) {
      const conversation = state.conversations.get(conversationId);
      if (conversation && conversation.unread_count) {
        state.conversations.set(conversationId, { ...conversation, unread_count: 0 });
        emit({ type: "conversation", event: "local", conversation: state.conversations.get(conversationId) });
      }
    },
    // What a fresh snapshot would show: the comparable state of every list (tests compare it with a new store).
    comparable() {
      const lists = {};
      for (const tab of state.lists.keys()) {
        lists[tab] = this.view(tab).map((c) => ({
          id: c.id, status: c.status, agent_id: c.agent_id, queue_id: c.queue_id, unread_count: c.unread_count,
          last_message_id: c.last_message?.id ?? null, labels: c.labels.map((l) => l.id),
        }));
      }
      const histories = {};
      for (const [id, history] of state.histories) {
        histories[id] = [...history.messages.values()]
          .sort((a, b) => instant(a.created_at) - instant(b.created_at) || (a.id < b.id ? -1 : 1))
          .slice(-HISTORY_PAGE)
          .map((m) => ({ id: m.id, status: m.status, text: m.text }));
      }
      return { lists, histories };
    },
  };
}
