// The wallboard's own small store: the board as the server last pushed it (`queue.stats` frames over the
// socket: the whole board first, then the rows that changed), plus presence changes applied at once from
// `agent.presence` events. Views subscribe and redraw what changed; the figures are never computed here.

export function createBoardStore() {
  const state = { loaded: false, day: null, timeZone: null, queues: [], agents: [] };
  const listeners = new Set();

  function emit(change) {
    for (const listener of listeners) listener(change);
  }

  function replaceRows(rows, changed, key) {
    const byId = new Map(changed.map((row) => [row[key], row]));
    return rows.map((row) => byId.get(row[key]) ?? row);
  }

  return {
    state,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    // A `queue.stats` frame's data.
    applyStats(data) {
      state.day = data.day;
      state.timeZone = data.time_zone;
      if (data.full) {
        state.queues = data.queues;
        state.agents = data.agents;
      } else {
        state.queues = replaceRows(state.queues, data.queues, "queue_id");
        state.agents = replaceRows(state.agents, data.agents, "user_id");
      }
      state.loaded = true;
      emit({ type: data.full ? "board" : "rows", queues: data.queues.map((q) => q.queue_id), agents: data.agents.map((a) => a.user_id) });
    },
    // An `agent.presence` event's data: shown now, before the next push confirms it.
    applyPresence(data) {
      const known = state.agents.find((agent) => agent.user_id === data.user_id);
      if (!known) return;
      const updated = { ...known, status: data.status, connected: data.connected, presence_since: data.changed_at ?? known.presence_since };
      state.agents = state.agents.map((agent) => (agent.user_id === data.user_id ? updated : agent));
      emit({ type: "rows", queues: [], agents: [data.user_id] });
    },
  };
}
