// Our RFB client over real TCP, for tests: connect, wait for the handshake and for updates, with bounded
// waits that fail with a clear message instead of hanging.

import { RfbClient, type RfbClientOptions } from "../../relay/rfb/client.ts";
import { RfbError } from "../../relay/rfb/errors.ts";
import type { ServerMessage } from "../../relay/rfb/server-messages.ts";
import { type TcpLink, connectTcp } from "../../relay/rfb/tcp.ts";

export interface TestClient {
  client: RfbClient;
  link: TcpLink;
  messages: ServerMessage[];
  error: RfbError | null;
  closed: boolean;
  /** Resolves once `pred` holds, checked after every event; rejects after `ms`. */
  until(pred: () => boolean, what: string, ms?: number): Promise<void>;
  /** Sends a request and waits until one more update has been received. */
  update(incremental: boolean, ms?: number): Promise<void>;
  close(): void;
}

export async function connectClient(
  port: number,
  opts: Omit<RfbClientOptions, "send"> = {},
  host = "127.0.0.1",
): Promise<TestClient> {
  const waiters = new Set<() => void>();
  const poke = () => {
    for (const w of [...waiters]) w();
  };
  let t!: TestClient;
  const client = new RfbClient({
    ...opts,
    send: (b) => t.link.write(b),
    onMessage: (m) => {
      t.messages.push(m);
      opts.onMessage?.(m);
    },
  });
  t = {
    client,
    link: null as unknown as TcpLink,
    messages: [],
    error: null,
    closed: false,
    until(pred, what, ms = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pred()) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          } else if (t.error || t.closed) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`${what}: connection ${t.error ? `failed: ${t.error.message}` : "closed"}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
    async update(incremental, ms) {
      const before = client.updates;
      client.requestUpdate(incremental);
      await t.until(() => client.updates > before, `update #${before + 1}`, ms);
    },
    close() {
      t.link.abort();
    },
  };
  t.link = await connectTcp({
    hostname: host,
    port,
    open: () => ({
      data(bytes) {
        try {
          client.feed(bytes);
        } catch (e) {
          t.error = e instanceof RfbError ? e : new RfbError("INTERNAL", String(e));
          t.link.abort();
        }
        poke();
      },
      close() {
        t.closed = true;
        poke();
      },
    }),
  });
  return t;
}

/** Pixels whose R, G or B differ between two canonical (or RGBA) buffers of the same size. */
export function rgbMismatches(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`sizes differ: ${a.length} vs ${b.length}`);
  let n = 0;
  for (let i = 0; i < a.length; i += 4) {
    if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) n++;
  }
  return n;
}
