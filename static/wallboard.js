// The wallboard page: the person is checked (page.js), the socket opened (live.js, which reconnects and
// resumes by itself), and the board asked for on every (re)connection: the server answers with the whole
// board, then pushes the rows that change, at most once a second (`queue.stats`). Nothing is polled.

import * as api from "./api.js";
import { byId, setText, toast } from "./dom.js";
import { t } from "./i18n.js";
import { connectLive } from "./live.js";
import { startPage } from "./page.js";
import { createBoardStore } from "./wallboard-store.js";
import { createBoardActions } from "./views/board-actions.js";
import { mountBoard } from "./views/board.js";

async function start() {
  await startPage();
  const store = createBoardStore();
  const actions = createBoardActions({ store });
  mountBoard({ store, actions });
  const connection = byId("connection");

  const live = connectLive({
    onState(state) {
      connection.dataset.state = state;
      setText(connection, t(`connection.${state}`));
      if (state === "live") live.send({ type: "wallboard" });
    },
    onEvent(frame) {
      if (frame.event === "agent.presence") store.applyPresence(frame.data);
    },
    onResync() {
      // The board is not replayed from the log: it comes whole again.
      live.send({ type: "wallboard" });
    },
    onSessionEnded() {
      window.location.assign(api.loginAddress());
    },
    onFrame(frame) {
      if (frame.type === "queue.stats") store.applyStats(frame.data);
      else if (frame.type === "error") toast(frame.error.message);
    },
  });
  // The store in reach of the browser's console (and of the tests).
  window.fivWallboard = { store };
}

start().catch(() => null);
