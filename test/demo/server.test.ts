// The demo device over real TCP on loopback, seen through our own RFB client: the first full update and
// every later incremental one (CopyRect scrolls, Hextile or Raw pixels, the viewer's pixel format) leave
// the client's framebuffer equal to the device's; pointer and keys from the viewer change the picture.

import { afterAll, describe, expect, test } from "bun:test";
import { Encoding, PseudoEncoding } from "../../relay/rfb/constants.ts";
import { CANONICAL_FORMAT, type PixelFormat } from "../../relay/rfb/pixel-format.ts";
import { type DemoDevice, startDemoDevice } from "../../relay/demo/server.ts";
import { keyEventMsg, pointerEventMsg } from "../../relay/rfb/writer.ts";
import { connectClient, rgbMismatches } from "../helpers/rfb-peer.ts";

const BGRX: PixelFormat = { ...CANONICAL_FORMAT, redShift: 16, blueShift: 0 };
const devices: DemoDevice[] = [];
afterAll(async () => {
  for (const d of devices) await d.stop();
});

async function demo(password?: string) {
  const clock = () => new Date(Date.UTC(2026, 10, 28, 12, 0, 0));
  const d = await startDemoDevice({
    host: "127.0.0.1",
    port: 0,
    fps: 0,
    clock,
    ...(password ? { password } : {}),
  });
  devices.push(d);
  return d;
}

describe("demo device", () => {
  for (const [label, encodings, pf] of [
    ["Hextile + CopyRect, canonical", [Encoding.Hextile, Encoding.CopyRect, Encoding.Raw], CANONICAL_FORMAT],
    ["Hextile + CopyRect, BGRX (TigerVNC's format)", [Encoding.CopyRect, Encoding.Hextile], BGRX],
    ["Raw only", [Encoding.Raw], CANONICAL_FORMAT],
    ["Raw only, BGRX (translated both ways)", [Encoding.Raw], BGRX],
  ] as const) {
    test(`${label}: full then 40 incremental updates stay pixel-exact while the screen changes`, async () => {
      const d = await demo();
      const c = await connectClient(d.port, {
        encodings: [...encodings, PseudoEncoding.DesktopSize],
        pixelFormat: pf,
        codecs: undefined,
      });
      try {
        await c.until(() => c.client.ready, "handshake");
        expect(c.client.info).toMatchObject({ width: 1280, height: 720, name: "shadowrelay demo device" });
        await c.update(false);
        expect(rgbMismatches(c.client.fb!.data, d.desktop.fb.data)).toBe(0);
        let t = 0;
        let sawCopy = false;
        for (let i = 0; i < 40; i++) {
          const before = c.client.updates;
          c.client.requestUpdate(true);
          if (i % 7 === 3) {
            c.client.send(pointerEventMsg(1, 100 + i * 10, 600));
            c.client.send(keyEventMsg(true, 0x61 + (i % 26)));
          }
          // Wait until the device has the request, then advance the scene so there is something to send.
          await Bun.sleep(5);
          t += 733; // more than one log line per tick, so the panel fills and scrolls (CopyRect)
          d.tick(t);
          await c.until(() => c.client.updates > before, `incremental update ${i}`);
          sawCopy ||= c.messages.some((m) => m.type === "Rect" && m.rect.encoding === Encoding.CopyRect);
          expect(rgbMismatches(c.client.fb!.data, d.desktop.fb.data)).toBe(0);
        }
        expect(sawCopy).toBe(encodings.includes(Encoding.CopyRect as never));
        expect(d.desktop.typedText.length).toBeGreaterThan(0);
      } finally {
        c.close();
      }
    });
  }

  test("VNC Authentication: the right password gets pixels, a wrong one is refused and the device lives on", async () => {
    const d = await demo("demo-pw");
    const bad = await connectClient(d.port, { password: "nope" });
    await expect(bad.until(() => bad.client.ready, "handshake")).rejects.toThrow(/AUTH_FAILED|closed/);
    const good = await connectClient(d.port, { password: "demo-pw" });
    try {
      await good.until(() => good.client.ready, "handshake");
      await good.update(false);
      expect(rgbMismatches(good.client.fb!.data, d.desktop.fb.data)).toBe(0);
    } finally {
      good.close();
    }
  });

  test("a viewer sending garbage is closed; another viewer on the same device is not affected", async () => {
    const d = await demo();
    const ok = await connectClient(d.port);
    await ok.until(() => ok.client.ready, "handshake");
    const evil = await connectClient(d.port);
    await evil.until(() => evil.client.ready, "handshake");
    evil.link.write(new Uint8Array([0x02, 0x00, 0xff, 0xff])); // SetEncodings with 65535 entries
    await evil.until(() => evil.closed, "the evil viewer to be closed");
    await ok.update(false);
    expect(rgbMismatches(ok.client.fb!.data, d.desktop.fb.data)).toBe(0);
    expect(d.viewers).toBe(1);
    ok.close();
  });
});
