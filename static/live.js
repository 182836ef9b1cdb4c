// The console's live connection: one WebSocket to /ws that resumes where it left off.
//
// Every event carries its tenant-wide `seq`; the last one handled is kept, so a reconnect asks the server
// for exactly what was missed (`resume`). Events at or below it are dropped, so nothing is handled twice.
// A page (re)load starts from the `hello`'s seq: the page then reads a fresh snapshot anyway. The socket reconnects by itself with a growing, jittered delay;
// when the session has ended it stops and says so: the server closes a live socket with 4401 then, and
// refuses a new one with HTTP 401 before the upgrade, which a browser only reports as a failed connection,
// so a socket that fails before its `hello` asks `/api/me` whether the session still stands.

const SESSION_ENDED = 4401;

async function sessionStands() {
  try {
    const answer = await fetch("/api/me", { credentials: "same-origin", headers: { Accept: "application/json" } });
    return answer.status !== 401;
  } catch {
    return true; // the server is unreachable: keep trying, the session may well stand
  }
}

export function connectLive({ onEvent, onState, onResync, onSessionEnded, onFrame }) {
  let socket = null;
  let lastSeq = null;
  let attempt = 0;
  let stopped = false;
  let retry = null;

  function remember(seq) {
    lastSeq = seq;
  }

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function end() {
    stopped = true;
    onState("ended");
    onSessionEnded();
  }

  function open() {
    if (stopped) return;
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    let greeted = false;
    socket = new WebSocket(`${scheme}//${window.location.host}/ws`);
    onState("connecting");
    socket.addEventListener("open", () => {
      // Resume at once: live events wait for this first frame.
      if (lastSeq !== null) send({ type: "resume", last_seq: lastSeq });
    });
    socket.addEventListener("message", (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.type === "hello") {
        greeted = true;
        attempt = 0;
        if (lastSeq === null) {
          remember(frame.data.last_seq);
          send({ type: "resume", last_seq: lastSeq });
        }
        onState("live", frame.data.user);
      } else if (frame.type === "event") {
        if (lastSeq !== null && frame.seq <= lastSeq) return;
        remember(frame.seq);
        onEvent(frame);
      } else if (frame.type === "resync") {
        remember(frame.data.last_seq);
        onResync();
      } else if (onFrame) {
        onFrame(frame);
      }
    });
    socket.addEventListener("close", async (closed) => {
      socket = null;
      if (stopped) return;
      // 4401 ends this tab's session, unless the person changed their password here: the server closes
      // every socket of theirs then, and this tab goes on under the new session it was given.
      const ended = (closed.code === SESSION_ENDED || !greeted) && !(await sessionStands());
      if (stopped) return; // stopped while asking
      if (ended) {
        end();
        return;
      }
      attempt += 1;
      const delay = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2);
      onState("reconnecting");
      retry = window.setTimeout(open, delay);
    });
  }

  open();
  return {
    send,
    stop() {
      stopped = true;
      window.clearTimeout(retry);
      if (socket) socket.close(1000);
    },
  };
}
