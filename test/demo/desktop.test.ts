// The demo desktop's picture: the font, determinism, and the property the demo RFB server relies on —
// replaying tick()'s changes (copies via CopyRect, dirty rects read from fb) onto the previous frame gives
// exactly the current frame, whatever the input and timing.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Framebuffer } from "../../relay/codec/framebuffer.ts";
import {
  ChangeTracker,
  type DemoChange,
  DemoDesktop,
  type DemoRect,
  escapeForDisplay,
} from "../../relay/demo/desktop.ts";
import { CELL_HEIGHT, CELL_WIDTH, drawText } from "../../relay/demo/font.ts";

const FIXED_CLOCK = (): Date => new Date(2026, 0, 2, 13, 37, 42);

function inside(r: DemoRect, w: number, h: number): boolean {
  return r.w > 0 && r.h > 0 && r.x >= 0 && r.y >= 0 && r.x + r.w <= w && r.y + r.h <= h;
}

function region(fb: Framebuffer, r: DemoRect): Uint8Array {
  return fb.readRect(r.x, r.y, r.w, r.h);
}

function samePixels(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

function firstDifference(a: Framebuffer, b: Framebuffer): string {
  for (let i = 0; i < a.data.length; i++) {
    if (a.data[i] !== b.data[i]) return `pixel (${(i >> 2) % a.width}, ${Math.floor(i / 4 / a.width)})`;
  }
  return "none";
}

/** What the RFB server does with a tick's changes, on its copy of the previous frame. */
function replay(shadow: Framebuffer, fb: Framebuffer, changes: readonly DemoChange[]): void {
  for (const c of changes) {
    const r = c.rect;
    if (c.kind === "copy") shadow.copyRect(c.src.x, c.src.y, r.x, r.y, r.w, r.h);
    else shadow.writeRect(r.x, r.y, r.w, r.h, fb.readRect(r.x, r.y, r.w, r.h));
  }
}

function snapshot(fb: Framebuffer): Framebuffer {
  const copy = new Framebuffer(fb.width, fb.height);
  copy.data.set(fb.data);
  return copy;
}

function pixelAt(fb: Framebuffer, x: number, y: number): number[] {
  const i = (y * fb.width + x) * 4;
  return [fb.data[i]!, fb.data[i + 1]!, fb.data[i + 2]!];
}

/** The foreground pixels of one glyph drawn alone, as a string of 0/1 (scale 1, black on white). */
function glyphBitmap(ch: string): string {
  const fb = new Framebuffer(CELL_WIDTH, CELL_HEIGHT);
  drawText(fb, 0, 0, ch, 0x000000, 0xffffff);
  let bits = "";
  for (let i = 0; i < fb.data.length; i += 4) bits += fb.data[i] === 0 ? "1" : "0";
  return bits;
}

const PRINTABLE = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i));

describe("font", () => {
  test("every printable char but space sets a foreground pixel; space sets none", () => {
    for (const ch of PRINTABLE) {
      const ones = [...glyphBitmap(ch)].filter((b) => b === "1").length;
      if (ch === " ") expect(ones).toBe(0);
      else expect({ ch, ones: ones > 0 }).toEqual({ ch, ones: true });
    }
  });

  test("the 95 printable glyphs are pairwise different, and none is the box", () => {
    const seen = new Map<string, string>();
    for (const ch of PRINTABLE) {
      const bits = glyphBitmap(ch);
      expect(seen.get(bits)).toBeUndefined();
      seen.set(bits, ch);
    }
    expect(seen.get(glyphBitmap("\u0001"))).toBeUndefined();
  });

  test("non-printable and non-ASCII chars draw the same box; an astral char is one cell", () => {
    const box = glyphBitmap("\u0001");
    for (const ch of ["\u0000", "\n", "\u007f", "é", "✓", "😀"]) expect(glyphBitmap(ch)).toBe(box);
    const fb = new Framebuffer(40, 20);
    expect(drawText(fb, 0, 0, "a😀b", 0xffffff)).toEqual({ x: 0, y: 0, w: 3 * CELL_WIDTH, h: CELL_HEIGHT });
  });

  test("returns the line box, clipped to the framebuffer and to the clip rect", () => {
    const fb = new Framebuffer(50, 30);
    expect(drawText(fb, 2, 3, "hi", 0xffffff, 0, 2)).toEqual({ x: 2, y: 3, w: 24, h: 22 });
    expect(drawText(fb, -4, -5, "hello", 0xffffff)).toEqual({ x: 0, y: 0, w: 26, h: 6 });
    expect(drawText(fb, 40, 25, "hello", 0xffffff, 0x123456)).toEqual({ x: 40, y: 25, w: 10, h: 5 });
    expect(drawText(fb, 60, 0, "x", 0xffffff).w).toBe(0);
    const clipped = drawText(fb, 0, 0, "clip", 0xffffff, 0, 1, { x: 5, y: 2, w: 7, h: 4 });
    expect(clipped).toEqual({ x: 5, y: 2, w: 7, h: 4 });
    // Nothing outside the clip was touched: the bg fill stopped at it.
    const before = new Framebuffer(50, 30);
    before.fill(0, 0, 50, 30, 9, 9, 9);
    const after = snapshot(before);
    drawText(after, 0, 0, "clip", 0xffffff, 0, 1, { x: 5, y: 2, w: 7, h: 4 });
    after.writeRect(5, 2, 7, 4, before.readRect(5, 2, 7, 4));
    expect(samePixels(after.data, before.data)).toBe(true);
    expect(() => drawText(fb, 0, 0, "x", 0, undefined, 0)).toThrow(RangeError);
  });

  test("scale 2 is scale 1 with every pixel doubled", () => {
    const small = new Framebuffer(CELL_WIDTH * 3, CELL_HEIGHT);
    const big = new Framebuffer(CELL_WIDTH * 6, CELL_HEIGHT * 2);
    drawText(small, 0, 0, "Ag&", 0xff8000, 0x000010);
    drawText(big, 0, 0, "Ag&", 0xff8000, 0x000010, 2);
    for (let y = 0; y < big.height; y++) {
      for (let x = 0; x < big.width; x++) {
        expect(pixelAt(big, x, y)).toEqual(pixelAt(small, x >> 1, y >> 1));
      }
    }
  });
});

describe("ChangeTracker", () => {
  const bounds = { x: 0, y: 0, w: 100, h: 100 };

  test("merges overlapping and contained rects, clips, drops empty ones", () => {
    const t = new ChangeTracker({ x: 0, y: 0, w: 1000, h: 1000 });
    t.markDirty({ x: 10, y: 10, w: 10, h: 10 });
    t.markDirty({ x: 15, y: 15, w: 10, h: 10 });
    t.markDirty({ x: 12, y: 12, w: 2, h: 2 });
    t.markDirty({ x: 995, y: -5, w: 20, h: 10 });
    t.markDirty({ x: 50, y: 50, w: 0, h: 10 });
    expect(t.take()).toEqual([
      { kind: "dirty", rect: { x: 10, y: 10, w: 15, h: 15 } },
      { kind: "dirty", rect: { x: 995, y: 0, w: 5, h: 5 } },
    ]);
    expect(t.take()).toEqual([]);
  });

  test("caps the list by merging", () => {
    const t = new ChangeTracker({ x: 0, y: 0, w: 4000, h: 4000 }, 3);
    for (let i = 0; i < 10; i++) t.markDirty({ x: i * 300, y: i * 300, w: 5, h: 5 });
    const out = t.take();
    expect(out.length).toBe(3);
    for (const c of out) expect(inside(c.rect, 4000, 4000)).toBe(true);
  });

  test("a copy carries the dirty parts of its source along, and comes first", () => {
    const t = new ChangeTracker(bounds);
    t.markDirty({ x: 0, y: 90, w: 100, h: 10 });
    t.recordCopy({ x: 0, y: 10 }, { x: 0, y: 0, w: 100, h: 90 });
    const out = t.take();
    expect(out[0]).toEqual({ kind: "copy", src: { x: 0, y: 10 }, rect: { x: 0, y: 0, w: 100, h: 90 } });
    expect(out.slice(1)).toEqual([{ kind: "dirty", rect: { x: 0, y: 80, w: 100, h: 20 } }]);
    expect(() => t.recordCopy({ x: 0, y: 20 }, { x: 0, y: 0, w: 100, h: 90 })).toThrow(RangeError);
  });
});

type Input =
  | { kind: "pointer"; x: number; y: number; mask: number }
  | { kind: "key"; keysym: number; down: boolean }
  | { kind: "cut"; text: string };

interface Step {
  dt: number;
  inputs: Input[];
}

const inputArb = (w: number, h: number): fc.Arbitrary<Input> =>
  fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant("pointer" as const),
        // Past the edges too: RFB coordinates are u16 and a viewer may send anything.
        x: fc.integer({ min: -20, max: w + 20 }),
        y: fc.integer({ min: -20, max: h + 20 }),
        mask: fc.oneof(fc.constant(0), fc.constant(1), fc.integer({ min: 0, max: 255 })),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant("key" as const),
        keysym: fc.oneof(
          fc.integer({ min: 0x20, max: 0x7e }),
          fc.constantFrom(0xff08, 0xff0d, 0xff8d, 0xffe1, 0xff1b),
          fc.integer({ min: 0, max: 0xffff }),
        ),
        down: fc.boolean(),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant("cut" as const), text: fc.string({ maxLength: 300 }) }),
    },
  );

const stepArb = (w: number, h: number): fc.Arbitrary<Step> =>
  fc.record({
    // Mostly 30 Hz, sometimes a repeated time, a stall of a few log lines, or one longer than the log panel.
    dt: fc.oneof(
      { weight: 8, arbitrary: fc.integer({ min: 25, max: 40 }) },
      { weight: 1, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: 400, max: 2600 }) },
      { weight: 1, arbitrary: fc.integer({ min: 10_000, max: 100_000 }) },
    ),
    inputs: fc.array(inputArb(w, h), { maxLength: 3 }),
  });

function feed(d: DemoDesktop, inputs: readonly Input[]): void {
  for (const i of inputs) {
    if (i.kind === "pointer") d.pointer(i.x, i.y, i.mask);
    else if (i.kind === "key") d.key(i.keysym, i.down);
    else d.cutText(i.text);
  }
}

/** Runs the steps, checking every change list; returns how many CopyRects were seen. */
function checkReplay(w: number, h: number, steps: readonly Step[], startMs: number): number {
  let clockMs = Date.UTC(2026, 0, 2, 12, 0, 0);
  const d = new DemoDesktop(w, h, { clock: () => new Date(clockMs) });
  const shadow = snapshot(d.fb);
  let now = startMs;
  let copies = 0;
  for (const s of steps) {
    feed(d, s.inputs);
    now += s.dt;
    clockMs += s.dt;
    const changes = d.tick(now);
    expect(changes.filter((c) => c.kind === "dirty").length).toBeLessThanOrEqual(16);
    let sawDirty = false;
    for (const c of changes) {
      expect(inside(c.rect, w, h)).toBe(true);
      if (c.kind === "copy") {
        // Copies come before every dirty rect, so dirty pixels can be read from fb afterwards.
        expect(sawDirty).toBe(false);
        expect(inside({ ...c.src, w: c.rect.w, h: c.rect.h }, w, h)).toBe(true);
        copies++;
      } else {
        sawDirty = true;
      }
    }
    replay(shadow, d.fb, changes);
    if (!samePixels(shadow.data, d.fb.data)) {
      throw new Error(`replay differs at frame ${d.frame}: ${firstDifference(shadow, d.fb)}`);
    }
  }
  return copies;
}

describe("DemoDesktop change tracking", () => {
  test("replaying the changes onto the previous frame reproduces every frame (1280×720, ~200 ticks)", () => {
    let copies = 0;
    fc.assert(
      fc.property(
        fc.array(stepArb(1280, 720), { minLength: 200, maxLength: 220 }),
        fc.nat(1e9),
        (steps, t0) => {
          copies += checkReplay(1280, 720, steps, t0);
        },
      ),
      { numRuns: 12 },
    );
    // The log panel must really scroll with CopyRect, or the property above says little about copies.
    expect(copies).toBeGreaterThan(100);
  });

  test("the same holds for small and odd sizes, where panels degenerate", () => {
    const size = fc.record({ w: fc.integer({ min: 1, max: 400 }), h: fc.integer({ min: 1, max: 300 }) });
    fc.assert(
      fc.property(
        size.chain(({ w, h }) =>
          fc.tuple(fc.constant(w), fc.constant(h), fc.array(stepArb(w, h), { minLength: 20, maxLength: 60 })),
        ),
        ([w, h, steps]) => {
          checkReplay(w, h, steps, 0);
        },
      ),
      { numRuns: 60 },
    );
  });

  test("a stale shadow does not match: the check above can fail", () => {
    const d = new DemoDesktop(1280, 720, { clock: FIXED_CLOCK });
    const shadow = snapshot(d.fb);
    d.tick(0);
    d.tick(30_000);
    const changes = d.tick(30_500);
    // Dropping the copy the log scroll needs must break the replay.
    expect(changes.some((c) => c.kind === "copy")).toBe(true);
    replay(
      shadow,
      d.fb,
      changes.filter((c) => c.kind !== "copy"),
    );
    expect(samePixels(shadow.data, d.fb.data)).toBe(false);
  });
});

describe("DemoDesktop scene", () => {
  function run(d: DemoDesktop): void {
    for (let i = 0; i < 120; i++) {
      if (i % 7 === 0) d.pointer(800 + i, 500 + (i % 13), i % 2);
      if (i % 5 === 0) d.key(0x61 + (i % 26), true);
      if (i === 60) d.cutText("copied\ttext");
      d.tick(1000 + i * 33.4);
    }
  }

  test("deterministic: same options, times and input give identical bytes", () => {
    const a = new DemoDesktop(1280, 720, { clock: FIXED_CLOCK });
    const b = new DemoDesktop(1280, 720, { clock: FIXED_CLOCK });
    expect(samePixels(a.fb.data, b.fb.data)).toBe(true);
    const first = snapshot(a.fb);
    run(a);
    run(b);
    expect(samePixels(a.fb.data, b.fb.data)).toBe(true);
    expect(samePixels(a.fb.data, first.data)).toBe(false);
    // The seed really feeds the log text.
    const c = new DemoDesktop(1280, 720, { clock: FIXED_CLOCK, seed: 7 });
    run(c);
    expect(samePixels(region(a.fb, a.regions.log), region(c.fb, c.regions.log))).toBe(false);
  });

  test("stepping through time at 30 Hz draws the same arena and log as jumping there in one tick", () => {
    // The replay property cannot see a sprite that is never erased (fb and shadow would agree on the
    // smear); comparing with a desktop that skipped every intermediate frame can.
    const stepped = new DemoDesktop(1280, 720, { clock: FIXED_CLOCK });
    const jumped = new DemoDesktop(1280, 720, { clock: FIXED_CLOCK });
    stepped.tick(0);
    jumped.tick(0);
    for (let t = 33; t < 30_000; t += 33) stepped.tick(t);
    stepped.tick(30_000);
    jumped.tick(30_000);
    for (const r of [stepped.regions.arena, stepped.regions.log]) {
      expect(samePixels(region(stepped.fb, r), region(jumped.fb, r))).toBe(true);
    }
  });

  test("consecutive frames always differ (frame counter), even at the same time", () => {
    const d = new DemoDesktop(1280, 720, { clock: FIXED_CLOCK });
    d.tick(5000);
    const before = snapshot(d.fb);
    const changes = d.tick(5000);
    expect(d.frame).toBe(2);
    expect(samePixels(before.data, d.fb.data)).toBe(false);
    expect(changes.length).toBeGreaterThan(0);
  });

  test("the clock redraws when, and only when, its text changes", () => {
    let now = new Date(2026, 0, 2, 9, 59, 58, 100);
    const d = new DemoDesktop(1280, 720, { clock: () => now });
    const r = d.regions.clock;
    d.tick(0);
    const first = region(d.fb, r);
    now = new Date(2026, 0, 2, 9, 59, 58, 900);
    d.tick(33);
    expect(samePixels(region(d.fb, r), first)).toBe(true);
    now = new Date(2026, 0, 2, 9, 59, 59, 0);
    const changes = d.tick(66);
    expect(samePixels(region(d.fb, r), first)).toBe(false);
    const covered = changes.some(
      (c) => c.kind === "dirty" && c.rect.x <= r.x && c.rect.y <= r.y && c.rect.x + c.rect.w >= r.x + r.w,
    );
    expect(covered).toBe(true);
  });

  test("typing hello then BackSpace leaves hell, and the panel shows each change", () => {
    const d = new DemoDesktop(1280, 720, { clock: FIXED_CLOCK });
    const r = d.regions.typedText;
    const empty = region(d.fb, r);
    for (const ch of "hello") {
      d.key(ch.charCodeAt(0), true);
      d.key(ch.charCodeAt(0), false);
    }
    expect(d.typedText).toBe("hello");
    const hello = region(d.fb, r);
    expect(samePixels(hello, empty)).toBe(false);
    d.key(0xff08, true);
    expect(d.typedText).toBe("hell");
    expect(samePixels(region(d.fb, r), hello)).toBe(false);
    const changes = d.tick(0);
    expect(
      changes.some((c) => c.kind === "dirty" && c.rect.y <= r.y && c.rect.y + c.rect.h >= r.y + r.h),
    ).toBe(true);
    d.key(0xffe1, true); // Shift_L: not text
    d.key(0xff0d, true);
    d.key(0x21, true);
    expect(d.typedText).toBe("hell\n!");
  });

  test("typed text keeps only the newest maxTypedChars characters", () => {
    const d = new DemoDesktop(640, 480, { clock: FIXED_CLOCK, maxTypedChars: 4 });
    for (const ch of "abcdef") d.key(ch.charCodeAt(0), true);
    expect(d.typedText).toBe("cdef");
  });

  test("the pointer trail paints at the pointer position while a button is down", () => {
    const d = new DemoDesktop(1280, 720, { clock: FIXED_CLOCK });
    const t = d.regions.pointerTrail;
    const x = t.x + 40;
    const y = t.y + 50;
    const before = pixelAt(d.fb, x, y);
    d.pointer(x, y, 1);
    expect(pixelAt(d.fb, x, y)).not.toEqual(before);
    const changes = d.tick(0);
    const hit = changes.some(
      (c) =>
        c.kind === "dirty" &&
        x >= c.rect.x &&
        x < c.rect.x + c.rect.w &&
        y >= c.rect.y &&
        y < c.rect.y + c.rect.h,
    );
    expect(hit).toBe(true);
    // A drag draws the segment in between, not just the end points.
    d.pointer(x + 60, y, 1);
    expect(pixelAt(d.fb, x + 30, y)).toEqual(pixelAt(d.fb, x, y));
    // Hovering leaves a fainter mark than a press.
    d.pointer(x, y + 40, 0);
    const hover = pixelAt(d.fb, x, y + 40);
    expect(hover).not.toEqual(pixelAt(d.fb, x, y + 60));
    expect(hover).not.toEqual(pixelAt(d.fb, x, y));
    // Off-screen coordinates are clamped, not trusted.
    d.pointer(70_000, -5, 1);
    for (const c of d.tick(33)) expect(inside(c.rect, 1280, 720)).toBe(true);
  });

  test("cut text is shown escaped to printable ASCII and truncated", () => {
    expect(escapeForDisplay("a\nb\\é✓\u0000\t", 100)).toBe("a\\nb\\\\\\xe9\\u{2713}\\x00\\t");
    expect(escapeForDisplay("abcdefghij", 8)).toBe("abcde...");
    expect(escapeForDisplay("abc", 3)).toBe("abc");
    const escaped = escapeForDisplay(`${"x".repeat(256 * 1024)}✓`, 500);
    expect(escaped.length).toBe(500);
    expect(/^[\x20-\x7e]*$/.test(escapeForDisplay("\u0001é😀\u007f", 100))).toBe(true);
    const d = new DemoDesktop(1280, 720, { clock: FIXED_CLOCK });
    const r = d.regions.clipboard;
    const before = region(d.fb, r);
    d.cutText("hello from the viewer\n");
    expect(samePixels(region(d.fb, r), before)).toBe(false);
  });

  test("rejects sizes and options it cannot honour", () => {
    expect(() => new DemoDesktop(0, 10)).toThrow(RangeError);
    expect(() => new DemoDesktop(10, 10, { maxDirtyRects: 0 })).toThrow(RangeError);
    expect(() => new DemoDesktop(10, 10).tick(Number.NaN)).toThrow(RangeError);
  });
});
