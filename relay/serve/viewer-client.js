// The viewer page's script (served by relay/serve/viewer.ts; the page has no inline code): takes the
// one-time ticket out of the address bar, opens the relay's viewer WebSocket on the same origin, hands it
// to noVNC's RFB scaled to the window, and shows the state in the status bar. The state is also on
// <body data-state> (loading → connecting → connected → disconnected, or failed) with data-close-code
// and data-close-reason from the WebSocket's close event, for people and for tests alike.

/** Human words for the close codes the relay uses (relay/rfb/errors.ts ERROR_TABLE; RFC 6455 §7.4.1). */
const CLOSE_MESSAGES = {
  1000: "The session has ended.",
  1001: "The relay is shutting down.",
  1006: "The connection to the relay was lost, or the relay refused it before it opened.",
  1011: "The relay hit an internal error.",
  4400: "The device or the viewer sent something the relay does not accept.",
  4401: "The relay refused the ticket: it has expired, was already used, or belongs to another session. Ask for a new viewer link.",
  4403: "Access was refused.",
  4408: "The connection timed out.",
  4413: "A protocol limit was exceeded.",
  4500: "The relay could not process the device's screen.",
};

const body = document.body;
const statusEl = document.getElementById("status");
const modeEl = document.getElementById("mode");
const disconnectButton = document.getElementById("disconnect");
const notice = document.getElementById("notice");
const screen = document.getElementById("screen");
let userEnded = false;

/** @param {string} state @param {string} text */
function show(state, text) {
  body.dataset.state = state;
  statusEl.textContent = text;
  // The bar cuts long text; an ended session has nothing else to show, so say it in full below the bar.
  const ended = state === "disconnected" || state === "failed";
  notice.textContent = ended ? text : "";
  notice.hidden = !ended;
}

/** What to tell the user when the connection ends; `close` is the WebSocket's close event, if one came. */
function endMessage(close, securityReason, clean) {
  if (userEnded) return "You disconnected.";
  if (securityReason) return `The device refused the connection: ${securityReason}`;
  if (close === null) return clean ? "Disconnected." : "The connection failed.";
  const known = CLOSE_MESSAGES[close.code] ?? (clean ? "Disconnected." : "The connection failed.");
  const detail = close.reason ? `code ${close.code}: ${close.reason}` : `code ${close.code}`;
  return `${known} (${detail})`;
}

async function main() {
  const ticket = new URLSearchParams(location.search).get("ticket");
  // Tickets are single-use: keep this one out of history, bookmarks and a reload.
  history.replaceState(null, "", location.pathname);
  if (!ticket) {
    show("failed", "This viewer link has no ticket. Ask for a new link.");
    return;
  }
  const viewOnly = body.dataset.viewOnly === "true";

  let RFB;
  try {
    ({ default: RFB } = await import(screen.dataset.rfb));
  } catch (err) {
    show("failed", `The viewer could not be loaded: ${err instanceof Error ? err.message : String(err)}`);
    return;
  }

  show("connecting", "Connecting…");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${location.host}${screen.dataset.wsPath}?ticket=${encodeURIComponent(ticket)}`;
  // Our own socket, handed to noVNC, so that the close code and reason are ours to show.
  const socket = new WebSocket(url);
  /** @type {{code: number, reason: string} | null} */
  let closed = null;
  let securityReason = "";
  let ended = false;
  socket.addEventListener("close", (e) => {
    closed = { code: e.code, reason: e.reason };
    body.dataset.closeCode = String(e.code);
    body.dataset.closeReason = e.reason;
    // noVNC's disconnect event may have come first (it ends on its own errors): complete the message.
    if (ended) show("disconnected", endMessage(closed, securityReason, e.wasClean));
  });

  let rfb;
  try {
    rfb = new RFB(screen, socket, { shared: true });
  } catch (err) {
    socket.close();
    show("failed", `The viewer could not start: ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  rfb.scaleViewport = true;
  rfb.resizeSession = false;
  rfb.viewOnly = viewOnly;
  rfb.focusOnClick = !viewOnly;

  rfb.addEventListener("connect", () => {
    show("connected", viewOnly ? "Connected, view only" : "Connected");
    modeEl.textContent = viewOnly ? "View only" : "";
    disconnectButton.hidden = false;
    if (!viewOnly) rfb.focus();
  });
  rfb.addEventListener("disconnect", (e) => {
    ended = true;
    disconnectButton.hidden = true;
    show("disconnected", endMessage(closed, securityReason, e.detail.clean));
  });
  rfb.addEventListener("securityfailure", (e) => {
    securityReason = e.detail.reason || `security result ${e.detail.status}`;
  });
  rfb.addEventListener("credentialsrequired", () => {
    // The relay authenticates browser viewers by their ticket; a password prompt means a misrouted session.
    securityReason = "it asked for a password, which browser viewers do not have";
    rfb.disconnect();
  });
  rfb.addEventListener("desktopname", (e) => {
    document.title = `${e.detail.name} · shadowrelay`;
  });
  disconnectButton.addEventListener("click", () => {
    userEnded = true;
    rfb.disconnect();
  });
}

main().catch((err) => {
  show("failed", `The viewer stopped: ${err instanceof Error ? err.message : String(err)}`);
});
