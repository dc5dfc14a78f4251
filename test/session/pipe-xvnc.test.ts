// The pipe session against real peers on loopback: TigerVNC's Xvnc (security None, as the agent presents
// a device after answering its authentication) reached over TCP, and as viewers our RfbClient (decoding, in
// memory) and vncsnapshot (through a loopback TCP listener). What the viewer sees through the relay must be
// exactly what is on the X display (captureX), and vncsnapshot's picture must match it within its JPEG
// tolerance. Every process is started and killed through the rig.

import { afterAll, describe, expect, test } from "bun:test";
import type { TCPSocketListener } from "bun";
import { RfbClient } from "../../relay/rfb/client.ts";
import { Encoding, PseudoEncoding } from "../../relay/rfb/constants.ts";
import type { RfbError } from "../../relay/rfb/errors.ts";
import { type LinkHandler, type TcpLink, connectTcp, listenTcp } from "../../relay/rfb/tcp.ts";
import { type ByteChannel, channelPair } from "../../relay/session/channel.ts";
import { type PipeEnd, type PipeSession, startPipe } from "../../relay/session/pipe.ts";
import { EXACT, type RgbaImage, compareImages, describeStats } from "../peers/images.ts";
import {
  PAINT_PEERS,
  SNAPSHOT_PEERS,
  VNCSNAPSHOT_TOLERANCE,
  XVNC_PEERS,
  type Xvnc,
  captureX,
  freePort,
  killAll,
  paint,
  requirePeer,
  startXvnc,
  vncsnapshot,
} from "../peers/rig.ts";

const ok = requirePeer(...XVNC_PEERS, ...PAINT_PEERS, ...SNAPSHOT_PEERS);
afterAll(async () => {
  await killAll();
});

/**
 * A TcpLink as a ByteChannel (the test's own thin adapter). Bytes that arrive before the consumer sets
 * onData are kept and handed over when it does: Xvnc greets as soon as the connection opens.
 */
class LinkChannel implements ByteChannel {
  link: TcpLink | null = null;
  private pending: Uint8Array[] = [];
  private consumer: ((b: Uint8Array) => void) | null = null;
  private closed = false;
  onClose: (reason: string) => void = () => {};

  readonly handler: LinkHandler = {
    data: (b) => {
      if (this.consumer) this.consumer(b);
      else this.pending.push(b.slice());
    },
    close: () => this.closedWith("connection closed"),
  };

  get buffered(): number {
    return this.link?.buffered ?? 0;
  }

  get onData(): (b: Uint8Array) => void {
    return this.consumer ?? (() => {});
  }

  set onData(f: (b: Uint8Array) => void) {
    this.consumer = f;
    for (const b of this.pending.splice(0)) f(b);
  }

  send(b: Uint8Array): void {
    this.link?.write(b);
  }

  close(reason = "normal"): void {
    this.link?.end();
    this.closedWith(reason);
  }

  private closedWith(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(reason);
  }
}

async function connectDevice(x: Xvnc): Promise<LinkChannel> {
  const ch = new LinkChannel();
  ch.link = await connectTcp({ hostname: x.host, port: x.port, open: () => ch.handler });
  return ch;
}

const asImage = (fb: { width: number; height: number; data: Uint8Array }): RgbaImage => {
  const rgba = fb.data.slice();
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
  return { width: fb.width, height: fb.height, rgba };
};

async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Our decoding RfbClient as the viewer, in memory, through a pipe to the device channel. */
function viewerThroughPipe(device: ByteChannel, encodings: number[], viewOnly: boolean) {
  const [viewerEnd, relayViewer] = channelPair();
  const ends: PipeEnd[] = [];
  const state = { error: null as RfbError | null, closed: false };
  /** Encodings of the pixel rects that arrived, to show the device really used what was asked for. */
  const seen = new Set<number>();
  const client = new RfbClient({
    send: (b) => viewerEnd.send(b),
    encodings,
    onMessage: (m) => {
      if (m.type === "Rect" && m.rect.encoding >= 0) seen.add(m.rect.encoding);
    },
  });
  viewerEnd.onData = (b) => {
    try {
      client.feed(b);
    } catch (e) {
      state.error = e as RfbError;
      viewerEnd.close("viewer error");
    }
  };
  viewerEnd.onClose = () => {
    state.closed = true;
  };
  const pipe = startPipe({ viewer: relayViewer, device, viewOnly, onEnd: (e) => ends.push(e) });
  const update = async (incremental: boolean) => {
    const before = client.updates;
    client.requestUpdate(incremental);
    await until(() => client.updates > before || ends.length > 0, `update #${before + 1}`);
    if (ends.length > 0) throw new Error(`pipe ended: ${JSON.stringify(ends[0])}`);
  };
  return { client, pipe, ends, state, seen, update, close: () => viewerEnd.close("viewer done") };
}

// Skips only outside CI, loudly: requirePeer() throws when CI=true, so in CI these tests always run.
describe.skipIf(!ok)("pipe: Xvnc → relay → viewer", () => {
  for (const [label, encodings] of [
    ["Raw", [Encoding.Raw]],
    ["Tight lossless + CopyRect", [Encoding.Tight, Encoding.CopyRect, Encoding.Raw]],
  ] as const) {
    test(`our client through the pipe sees exactly the X display (${label})`, async () => {
      const x = await startXvnc({ width: 640, height: 400, desktopName: "pipe-test" });
      try {
        await paint(x, { pattern: "test" });
        const device = await connectDevice(x);
        const v = viewerThroughPipe(
          device,
          [...encodings, PseudoEncoding.DesktopSize, PseudoEncoding.LastRect],
          true,
        );
        try {
          await until(() => v.client.ready || v.ends.length > 0, "both handshakes");
          expect(v.ends).toEqual([]);
          expect(v.client.info).toMatchObject({ width: 640, height: 400, name: "pipe-test" });
          expect(v.pipe.device).toMatchObject({ width: 640, height: 400 });
          await v.update(false);
          const truth = await captureX(x);
          const full = compareImages(asImage(v.client.fb!), truth, EXACT);
          expect({ ok: full.ok, stats: describeStats(full) }).toEqual({
            ok: true,
            stats: expect.any(String),
          });

          // Repaint with noise and catch up with incremental updates only (Tight: the same zlib streams).
          const painted = await paint(x, { pattern: "noise" });
          for (let i = 0; i < 20 && !compareImages(asImage(v.client.fb!), painted, EXACT).ok; i++) {
            await v.update(true);
          }
          expect(compareImages(asImage(v.client.fb!), painted, EXACT).ok).toBe(true);
          expect(v.state.error).toBeNull();
          expect(v.ends).toEqual([]);
          expect(v.seen.has(encodings[0])).toBe(true);
          expect([...v.seen].every((e) => (encodings as readonly number[]).includes(e))).toBe(true);
        } finally {
          v.close();
        }
        await until(() => v.ends.length > 0, "the pipe's end");
        expect(v.ends).toEqual([expect.objectContaining({ by: "viewer", reason: "viewer closed" })]);
        expect(v.ends[0]!.bytesToViewer).toBeGreaterThan(640 * 400); // at least the noise frame's worth
      } finally {
        await x.stop();
      }
    }, 60_000);
  }

  test("vncsnapshot through a loopback listener and the pipe gets the same picture", async () => {
    const x = await startXvnc({ width: 640, height: 400 });
    let listener: TCPSocketListener<unknown> | null = null;
    const sessions: PipeSession[] = [];
    const ends: PipeEnd[] = [];
    try {
      const truth = await paint(x, { pattern: "test" });
      const port = freePort();
      listener = listenTcp({
        hostname: "127.0.0.1",
        port,
        accept(link) {
          const viewer = new LinkChannel();
          viewer.link = link;
          connectDevice(x).then(
            (device) => {
              sessions.push(startPipe({ viewer, device, viewOnly: true, onEnd: (e) => ends.push(e) }));
            },
            () => link.abort(),
          );
          return viewer.handler;
        },
      }) as TCPSocketListener<unknown>;
      const snap = await vncsnapshot(port);
      const stats = compareImages(snap, truth, VNCSNAPSHOT_TOLERANCE);
      expect({ ok: stats.ok, stats: describeStats(stats) }).toEqual({ ok: true, stats: expect.any(String) });
      await until(() => ends.length === sessions.length && sessions.length > 0, "every pipe's end");
      for (const e of ends) {
        expect(e.by).toBe("viewer");
        expect(e.error).toBeUndefined();
      }
      // One of the connections carried the whole picture.
      expect(Math.max(...ends.map((e) => e.bytesToViewer))).toBeGreaterThan(1000);
    } finally {
      for (const s of sessions) s.end("test over");
      listener?.stop(true);
      await x.stop();
    }
  }, 60_000);
});
