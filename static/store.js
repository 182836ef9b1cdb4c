// The console's client store: a REST snapshot, then every socket event applied to it (`apply`), the way
// Zulip's register → fetch → apply works. Views never fetch for themselves what an event can bring: they
// render from here and re-render when told (`subscribe`). Events that arrive while anything is being read
// (a snapshot, a list's next page, a conversation) wait, and are applied on top of what was read, in order;
// applying an event the read already holds changes nothing (conversations are replaced whole; a message
// is counted once, by time; a delivery status never goes back).
// The people (presence and names), queues, labels and canned responses are read whole, page by page
// (api.getAll): a tenant with more than its cap is told so (`partial`) rather than silently cut short.

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

const DELIVERY_ORDER = { queued: 0, sent: 1, delivered: 2, read: 3 };

// A late answer (a reply's POST, an older page) must not set a tick back: statuses only move forward, except
// a failure and a retry of it, which may go either way.
function laterStatus(known, incoming) {
  const before = DELIVERY_ORDER[known];
  const after = DELIVERY_ORDER[incoming];
  return before !== undefined && after !== undefined && after < before ? known : incoming;
}

// Where a list stops: the sort value and id of the last conversation loaded (what its cursor names).
function boundaryOf(conversation, sort) {
  const field = sort.replace(/^-/, "");
  return { id: conversation.id, [field]: conversation[field] };
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
    // The lists a tenant has more of than the console loads whole (api.ALL_CAP): [{kind, shown, total}].
    partial: [],
    filters: {},
    openId: null,
    loading: true,
    error: null,
  };
  const pending = []; // events held while something is being read
  let holds = 0;
  let generation = 0;
  let filterRequest = 0;

  function emit(change) {
    for (const listener of listeners) listener(change);
  }

  // Reads `fn` does wait for no event: the events that arrive meanwhile are applied after it, in order.
  async function holding(fn) {
    holds += 1;
    try {
      return await fn();
    } finally {
      holds -= 1;
      if (holds === 0) {
        const held = pending.splice(0);
        for (const frame of held) applyNow(frame);
      }
    }
  }

  function myQueues() {
    return isStaff(state.me) ? null : new Set(state.queues.keys());
  }

  // Whether the person may still see the conversation (the server's sight rule, for what events bring).
  function inSight(conversation) {
    if (isStaff(state.me)) return true;
    if (conversation.status === "assigned") return conversation.agent_id === state.me.user.id;
    return conversation.status === "waiting" && state.queues.has(conversation.queue_id);
  }

  function listQuery(tab) {
    const definition = TABS[tab];
    return { ...definition.query(state.me, state.filters), sort: definition.sort };
  }

  async function fetchList(query, cursor) {
    const { data } = await api.getPage("/api/conversations", { ...query, limit: PAGE, cursor });
    return data;
  }

  function takeList(tab, query, data, into) {
    const list = into ?? { tab, query, ids: [], nextCursor: null, boundary: null };
    for (const conversation of data.items) {
      state.conversations.set(conversation.id, conversation);
      list.ids.push(conversation.id);
    }
    list.nextCursor = data.next_cursor;
    const last = data.items[data.items.length - 1];
    if (last) list.boundary = boundaryOf(last, query.sort);
    state.lists.set(tab, list);
  }

  async function loadHistory(conversationId, { older = false } = {}) {
    return holding(async () => {
      const history = state.histories.get(conversationId) ?? { messages: new Map(), nextCursor: null, complete: false };
      if (older && (history.complete || !history.nextCursor)) return history;
      const before = older ? history.nextCursor : undefined;
      const [{ data }, notes] = await Promise.all([
        api.getPage(`/api/conversations/${conversationId}/messages`, { limit: HISTORY_PAGE, before }),
        // Notes come oldest first: a single page would drop the newest of a long-discussed conversation.
        older ? null : api.getAll(`/api/conversations/${conversationId}/notes`),
      ]);
      for (const message of data.items) {
        const known = history.messages.get(message.id);
        history.messages.set(message.id, known ? { ...message, status: laterStatus(known.status, message.status) } : message);
      }
      history.nextCursor = data.next_cursor;
      history.complete = data.next_cursor === null;
      state.histories.set(conversationId, history);
      if (notes) state.notes.set(conversationId, new Map(notes.items.map((note) => [note.id, note])));
      emit({ type: "history", conversationId });
      return history;
    });
  }

  // One conversation with its history (opened from a list, a search or the contact panel); null when it is
  // not (or no longer) the person's to see.
  async function loadConversation(conversationId) {
    return holding(async () => {
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
    });
  }

  // Everything read anew, and swapped in whole only once all of it has come: a failure leaves what was.
  async function loadSnapshot() {
    const mine = ++generation;
    state.loading = true;
    state.error = null;
    emit({ type: "loading" });
    try {
      await holding(async () => {
        const staff = isStaff(state.me);
        const me = { items: [state.me.user], total: 1, complete: true };
        const [queues, labels, canned, people] = await Promise.all([
          api.getAll("/api/queues"),
          api.getAll("/api/labels"),
          api.getAll("/api/canned-responses"),
          staff ? api.getAll("/api/users") : me,
        ]);
        const tabs = Object.keys(TABS).filter((tab) => staff || !TABS[tab].staffOnly);
        const queries = tabs.map((tab) => listQuery(tab));
        const pages = await Promise.all(queries.map((query) => fetchList(query)));
        if (mine !== generation) return;
        state.queues = new Map(queues.items.map((queue) => [queue.id, queue]));
        state.labels = new Map(labels.items.map((label) => [label.id, label]));
        state.canned = canned.items;
        state.presence = new Map(people.items.map((person) => [person.id, person]));
        state.partial = Object.entries({ people, queues, labels, canned })
          .filter(([, loaded]) => !loaded.complete)
          .map(([kind, loaded]) => ({ kind, shown: loaded.items.length, total: loaded.total }));
        state.conversations = new Map();
        state.lists = new Map();
        tabs.forEach((tab, index) => takeList(tab, queries[index], pages[index]));
        state.histories = new Map();
        state.notes = new Map();
        if (state.openId) await loadConversation(state.openId);
      });
      if (mine === generation) {
        state.loading = false;
        emit({ type: "snapshot" });
      }
    } catch (error) {
      if (mine === generation) {
        state.loading = false;
        state.error = error;
        emit({ type: "error", error });
      }
      throw error;
    }
  }

  function putConversation(conversation) {
    const before = state.conversations.get(conversation.id);
    state.conversations.set(conversation.id, conversation);
    // Out of sight, a conversation's history stops being kept up: it is read anew if it comes back.
    if (!inSight(conversation) && conversation.id !== state.openId) {
      state.histories.delete(conversation.id);
      state.notes.delete(conversation.id);
    }
    return before;
  }

  function addMessage(conversationId, message) {
    const history = state.histories.get(conversationId);
    if (history) {
      const known = history.messages.get(message.id);
      history.messages.set(message.id, known ? { ...known, ...message, status: laterStatus(known.status, message.status) } : message);
    }
    const conversation = state.conversations.get(conversationId);
    if (!conversation) return;
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
      addMessage(data.conversation_id, data.message);
      emit({ type: "message", event: frame.event, conversationId: data.conversation_id, message: data.message });
    } else if (frame.event === "message.updated") {
      // Edited, deleted for everyone, or reacted to: the message replaces the one held, counting nothing anew.
      const history = state.histories.get(data.conversation_id);
      const known = history?.messages.get(data.message.id);
      if (known) history.messages.set(data.message.id, { ...known, ...data.message, status: laterStatus(known.status, data.message.status) });
      emit({ type: "message", event: frame.event, conversationId: data.conversation_id, message: data.message });
    } else if (frame.event === "message.status") {
      const history = state.histories.get(data.conversation_id);
      const message = history?.messages.get(data.message_id);
      if (message) history.messages.set(data.message_id, { ...message, status: laterStatus(message.status, data.status), error: data.error });
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
    } else if (frame.event === "tenant.updated") {
      // An admin changed the tenant: what the console shows of it follows at once (who may take waiting).
      Object.assign(state.me, { tenant_name: data.tenant_name, time_zone: data.time_zone, agents_can_take_waiting: data.agents_can_take_waiting });
      emit({ type: "tenant" });
    } else if (frame.event === "queue.members_changed") {
      // Joining or leaving a queue changes which waiting conversations are in sight: read them again.
      if (state.me.user && data.user_id === state.me.user.id) loadSnapshot().catch(() => null);
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
      if (holds > 0) pending.push(frame);
      else applyNow(frame);
    },
    loadSnapshot,
    loadConversation,
    loadHistory,
    // The conversation on screen: its history is kept up and read again with every snapshot.
    focus(conversationId) {
      state.openId = conversationId;
    },
    async loadMore(tab) {
      const list = state.lists.get(tab);
      if (!list?.nextCursor) return;
      await holding(async () => takeList(tab, list.query, await fetchList(list.query, list.nextCursor), list));
      emit({ type: "list", tab });
    },
    async setFilters(filters) {
      const request = ++filterRequest;
      state.filters = filters;
      if (!isStaff(state.me)) return;
      const query = listQuery("all");
      await holding(async () => {
        const data = await fetchList(query);
        if (request === filterRequest) takeList("all", query, data);
      });
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
      if (!list.nextCursor || !list.boundary) return inList;
      return inList.filter((c) => compare(c, list.boundary) <= 0);
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
