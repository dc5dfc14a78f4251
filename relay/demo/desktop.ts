// The built-in demo device's picture: a synthetic, always-changing desktop rendered into a canonical
// Framebuffer, deterministically (same constructor options + same calls → same bytes), with change tracking
// that the demo RFB server turns into CopyRect and pixel rects. Pure: no timers, no I/O; the server calls
// tick() at its frame rate and forwards input events here.

import { Framebuffer } from "../codec/framebuffer.ts";
import {
  type DemoRect,
  containsRect,
  discBounds,
  drawLine,
  fbBounds,
  fillDisc,
  fillRect,
  insetRect,
  intersectRect,
  isEmptyRect,
  makeRect,
  mixRgb,
  packRgb,
  pixelView,
  rectArea,
  unionRect,
} from "./draw.ts";
import { CELL_HEIGHT, CELL_WIDTH, drawText, textWidth } from "./font.ts";

export type { DemoRect } from "./draw.ts";

/**
 * One change since the previous tick(). A list is meant to be replayed in order onto the previous frame:
 * "copy" = CopyRect from src (same size as rect) within that frame, "dirty" = read rect's pixels from fb
 * after tick() returned. Copies always come first, in the order they were done on fb; dirty rects follow
 * (TigerVNC's EncodeManager sends copies before changed rects for the same reason: pixel rects carry final
 * pixels, so a copy replayed after them would move the wrong content).
 */
export type DemoChange =
  | { kind: "copy"; src: { x: number; y: number }; rect: DemoRect }
  | { kind: "dirty"; rect: DemoRect };

export interface DemoDesktopOptions {
  /** Wall clock for the title bar's HH:MM:SS (local time). Default: real time. */
  clock?: () => Date;
  /** Seed of the log panel's line generator. Default DEFAULT_DEMO_SEED. */
  seed?: number;
  /** The typed-text panel keeps at most this many characters, dropping the oldest. Default 1024. */
  maxTypedChars?: number;
  /** At most this many dirty rects per tick(); beyond, the cheapest pairs are merged. Default 16. */
  maxDirtyRects?: number;
}

export const DEFAULT_DEMO_SEED = 0x5eed_0001;
export const DEFAULT_MAX_TYPED_CHARS = 1024;
export const DEFAULT_MAX_DIRTY_RECTS = 16;
/** A new log line every 500 ms of scene time. */
export const LOG_LINE_INTERVAL_MS = 500;

// Keysyms (RFB §7.5.4 KeyEvent uses X11 keysyms, keysymdef.h).
const XK_BACKSPACE = 0xff08;
const XK_RETURN = 0xff0d;
const XK_KP_ENTER = 0xff8d;
// PointerEvent button mask (RFB §7.5.5): bits 0–2 are real buttons; 3/4 are wheel clicks, not drags.
const BUTTON_LEFT = 0x01;
const BUTTON_MIDDLE = 0x02;
const BUTTON_RIGHT = 0x04;

// Geometry, in pixels.
const MARGIN = 8;
const TITLE_H = 40;
const HEADER_H = 18;
const LOG_LINE_H = CELL_HEIGHT + 1;
const ARENA_GRID = 24;
const BRUSH_RADIUS = 3;
const HOVER_RADIUS = 1;
// A merge that wastes at most this many pixels is always taken: one 64×64 tile costs less to send than
// another rect header plus its encoder setup.
const MERGE_SLACK_PX = 64 * 64;

// Palette (0xRRGGBB).
const DESK_TOP = 0x1d2433;
const DESK_BOTTOM = 0x11151e;
const TITLE_TOP = 0x3b6fb6;
const TITLE_BOTTOM = 0x1f4682;
const TITLE_EDGE = 0x79a6e8;
const TITLE_TEXT = 0xffffff;
const TITLE_DIM = 0xaac4ee;
const CLOCK_TEXT = 0xffe9a8;
const PANEL_BORDER = 0x35425a;
const HEADER_BG = 0x232d3f;
const HEADER_TEXT = 0xdfe7f3;
const HEADER_DIM = 0x8693a9;
const PANEL_BG = 0x0e131c;
const ARENA_BG = 0x111a29;
const ARENA_LINE = 0x1d2b42;
const SQUARE_FILL = 0x2dd4bf;
const SQUARE_EDGE = 0x0f766e;
const SQUARE_TEXT = 0x062a26;
const LOG_TIME = 0x6e7c94;
const LOG_TEXT = 0xc9d1d9;
const LOG_LEVEL_COLORS: Record<LogLevel, number> = { INFO: 0x7ee787, DEBUG: 0x79c0ff, WARN: 0xf2cc60 };
const TYPED_TEXT = 0xffffff;
const CURSOR = 0x58a6ff;
const CLIP_TEXT = 0xe6c07b;
const TRAIL_BG = 0x0a0e15;
const TRAIL_HINT = 0x3a4558;
const HOVER_DOT = 0x4a5670;
const BUTTON_COLORS = [0xff6b6b, 0x6bff8f, 0x6bb5ff] as const;

type LogLevel = "INFO" | "DEBUG" | "WARN";

/** Where the scene's parts are (panel bodies, title-bar fields), for tests and for the curious server. */
export interface DemoRegions {
  title: DemoRect;
  clock: DemoRect;
  frameCounter: DemoRect;
  arena: DemoRect;
  colorBars: DemoRect;
  typedText: DemoRect;
  clipboard: DemoRect;
  log: DemoRect;
  pointerTrail: DemoRect;
}

interface Panel {
  frame: DemoRect;
  header: DemoRect;
  body: DemoRect;
  label: string;
}

interface Layout {
  title: DemoRect;
  clock: DemoRect;
  frameCounter: DemoRect;
  arena: Panel;
  bars: Panel;
  typed: Panel;
  clipboard: Panel;
  log: Panel;
  trail: Panel;
  /** The log panel's text rows (whole lines only), inside log.body. */
  logText: DemoRect;
  logRows: number;
}

interface Sprites {
  ballX: number;
  ballY: number;
  ballR: number;
  ballColor: number;
  squareX: number;
  squareY: number;
  squareS: number;
}

/**
 * Collects what changed between two tick()s so that replaying copies then dirty rects onto the previous
 * frame reproduces the current one. Dirty rects are clipped, de-duplicated and merged; a copy moves the
 * dirty parts of its source along with the pixels (the replayed copy reads the old frame there).
 */
export class ChangeTracker {
  private readonly bounds: DemoRect;
  private readonly maxRects: number;
  private copies: DemoChange[] = [];
  private dirty: DemoRect[] = [];

  constructor(bounds: DemoRect, maxRects = DEFAULT_MAX_DIRTY_RECTS) {
    if (!Number.isSafeInteger(maxRects) || maxRects < 1)
      throw new RangeError(`maxDirtyRects ${maxRects} < 1`);
    this.bounds = bounds;
    this.maxRects = maxRects;
  }

  markDirty(r: DemoRect): void {
    let add = intersectRect(r, this.bounds);
    if (isEmptyRect(add)) return;
    // Absorb every rect that is cheap to merge with; a merge can make further merges cheap, so repeat.
    for (let merged = true; merged; ) {
      merged = false;
      for (let i = 0; i < this.dirty.length; i++) {
        const d = this.dirty[i]!;
        const u = unionRect(d, add);
        if (rectArea(u) - rectArea(d) - rectArea(add) + rectArea(intersectRect(d, add)) <= MERGE_SLACK_PX) {
          this.dirty.splice(i, 1);
          add = u;
          merged = true;
          break;
        }
      }
    }
    this.dirty.push(add);
    while (this.dirty.length > this.maxRects) this.mergeCheapestPair();
  }

  /** Records fb.copyRect(src.x, src.y, rect.x, rect.y, rect.w, rect.h), already done on the framebuffer. */
  recordCopy(src: { x: number; y: number }, rect: DemoRect): void {
    const from = makeRect(src.x, src.y, rect.w, rect.h);
    if (!containsRect(this.bounds, from) || !containsRect(this.bounds, rect) || isEmptyRect(rect)) {
      throw new RangeError("recordCopy: copy outside the framebuffer");
    }
    const moved: DemoRect[] = [];
    for (const d of this.dirty) {
      const i = intersectRect(d, from);
      if (!isEmptyRect(i)) moved.push(makeRect(i.x + rect.x - src.x, i.y + rect.y - src.y, i.w, i.h));
    }
    // Whatever lay wholly inside the destination is now exactly the (possibly moved-dirty) source.
    this.dirty = this.dirty.filter((d) => !containsRect(rect, d));
    this.copies.push({ kind: "copy", src: { x: src.x, y: src.y }, rect: { ...rect } });
    for (const m of moved) this.markDirty(m);
  }

  /** The changes since the last take(), copies first; resets the tracker. */
  take(): DemoChange[] {
    const out = this.copies;
    for (const rect of this.dirty) out.push({ kind: "dirty", rect });
    this.copies = [];
    this.dirty = [];
    return out;
  }

  private mergeCheapestPair(): void {
    let best = Number.POSITIVE_INFINITY;
    let bi = 0;
    let bj = 1;
    for (let i = 0; i < this.dirty.length; i++) {
      for (let j = i + 1; j < this.dirty.length; j++) {
        const a = this.dirty[i]!;
        const b = this.dirty[j]!;
        const cost = rectArea(unionRect(a, b)) - rectArea(a) - rectArea(b);
        if (cost < best) {
          best = cost;
          bi = i;
          bj = j;
        }
      }
    }
    const u = unionRect(this.dirty[bi]!, this.dirty[bj]!);
    this.dirty.splice(bj, 1);
    this.dirty[bi] = u;
  }
}

/** The built-in demo device's desktop. Construction renders the first frame completely. */
export class DemoDesktop {
  readonly fb: Framebuffer;
  readonly width: number;
  readonly height: number;
  readonly regions: Readonly<DemoRegions>;

  private readonly clock: () => Date;
  private readonly seed: number;
  private readonly maxTypedChars: number;
  private readonly layout: Layout;
  private readonly tracker: ChangeTracker;

  private startMs: number | undefined;
  private sceneMs = 0;
  private frameNo = 0;
  private clockText = "";
  private sprites: Sprites;
  private logLinesShown = 0;
  private typed = "";
  private clipboardLines: string[] = [];
  private lastPointer: { x: number; y: number; drawing: boolean } | undefined;

  constructor(width = 1280, height = 720, opts: DemoDesktopOptions = {}) {
    if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
      throw new RangeError(`demo desktop size ${width}x${height}`);
    }
    const maxTyped = opts.maxTypedChars ?? DEFAULT_MAX_TYPED_CHARS;
    if (!Number.isSafeInteger(maxTyped) || maxTyped < 0) throw new RangeError(`maxTypedChars ${maxTyped}`);
    this.fb = new Framebuffer(width, height);
    this.width = width;
    this.height = height;
    this.clock = opts.clock ?? (() => new Date());
    this.seed = (opts.seed ?? DEFAULT_DEMO_SEED) >>> 0;
    this.maxTypedChars = maxTyped;
    this.layout = computeLayout(width, height);
    const L = this.layout;
    const fbRect = fbBounds(this.fb);
    const visible = (r: DemoRect): DemoRect => intersectRect(r, fbRect);
    this.regions = Object.freeze({
      title: visible(L.title),
      clock: visible(L.clock),
      frameCounter: visible(L.frameCounter),
      arena: visible(L.arena.body),
      colorBars: visible(L.bars.body),
      typedText: visible(L.typed.body),
      clipboard: visible(L.clipboard.body),
      log: visible(L.log.body),
      pointerTrail: visible(L.trail.body),
    });
    this.tracker = new ChangeTracker(fbBounds(this.fb), opts.maxDirtyRects ?? DEFAULT_MAX_DIRTY_RECTS);
    this.sprites = computeSprites(this.layout.arena.body, 0);
    this.renderAll();
    // The first frame is sent whole anyway; tick() reports changes relative to it.
    this.tracker.take();
  }

  /** What has been typed (printable ASCII and "\n"), as shown in the typed-text panel. */
  get typedText(): string {
    return this.typed;
  }

  /** Frames rendered so far (0 after construction, +1 per tick). */
  get frame(): number {
    return this.frameNo;
  }

  /**
   * Advances the scene to nowMs (any monotonic clock; the first call is scene time 0, and time never runs
   * backwards) and returns the changes since the previous call, including those from input events.
   */
  tick(nowMs: number): DemoChange[] {
    if (!Number.isFinite(nowMs)) throw new RangeError(`tick: time ${nowMs}`);
    if (this.startMs === undefined) this.startMs = nowMs;
    this.sceneMs = Math.max(this.sceneMs, nowMs - this.startMs);
    this.frameNo++;
    this.drawFrameCounter();
    this.drawClock();
    this.moveSprites();
    this.advanceLog();
    return this.tracker.take();
  }

  /** A PointerEvent: a stroke while a button is down, a faint dot while hovering, in the trail canvas. */
  pointer(x: number, y: number, buttonMask: number): void {
    const px = clampInt(x, 0, this.width - 1);
    const py = clampInt(y, 0, this.height - 1);
    const buttons = buttonMask & (BUTTON_LEFT | BUTTON_MIDDLE | BUTTON_RIGHT);
    const drawing = buttons !== 0;
    const body = this.layout.trail.body;
    const last = this.lastPointer;
    if (drawing) {
      const color =
        buttons & BUTTON_LEFT
          ? BUTTON_COLORS[0]
          : buttons & BUTTON_MIDDLE
            ? BUTTON_COLORS[1]
            : BUTTON_COLORS[2];
      this.tracker.markDirty(
        last?.drawing
          ? drawLine(this.fb, last.x, last.y, px, py, BRUSH_RADIUS, color, body)
          : fillDisc(this.fb, px, py, BRUSH_RADIUS, color, body),
      );
    } else if (last === undefined || last.x !== px || last.y !== py) {
      this.tracker.markDirty(fillDisc(this.fb, px, py, HOVER_RADIUS, HOVER_DOT, body));
    }
    this.lastPointer = { x: px, y: py, drawing };
    const mask = (buttonMask & 0xff).toString(2).padStart(8, "0");
    this.drawHeaderReadout(this.layout.trail, `pointer ${px},${py} mask ${mask}`);
  }

  /** A KeyEvent: printable keysyms type, BackSpace deletes, Return starts a new line. */
  key(keysym: number, down: boolean): void {
    const code = keysym >>> 0;
    this.drawHeaderReadout(
      this.layout.typed,
      `keysym 0x${code.toString(16).padStart(4, "0")} ${down ? "down" : "up"}`,
    );
    if (!down) return;
    if (code >= 0x20 && code <= 0x7e) this.typed += String.fromCharCode(code);
    else if (code === XK_BACKSPACE) this.typed = this.typed.slice(0, -1);
    else if (code === XK_RETURN || code === XK_KP_ENTER) this.typed += "\n";
    else return;
    if (this.typed.length > this.maxTypedChars)
      this.typed = this.typed.slice(this.typed.length - this.maxTypedChars);
    this.drawTyped();
  }

  /** A ClientCutText: shows the start of the text, escaped to printable ASCII. */
  cutText(text: string): void {
    const body = this.layout.clipboard.body;
    const cols = Math.max(0, Math.floor((body.w - 12) / CELL_WIDTH));
    const rows = Math.max(0, Math.floor((body.h - 8) / LOG_LINE_H));
    let count = 0;
    for (const _ of text) count++;
    const head = `received ${count} char${count === 1 ? "" : "s"}:`;
    const room = Math.max(0, rows - 1) * cols;
    const lines = [head, ...wrapFixed(escapeForDisplay(text, room), cols).slice(0, Math.max(0, rows - 1))];
    this.clipboardLines = lines;
    this.drawClipboard();
  }

  // ---- rendering -------------------------------------------------------------------------------------

  private renderAll(): void {
    const fb = this.fb;
    const px = pixelView(fb);
    // Desktop background: a vertical gradient, one fill per row.
    for (let y = 0; y < this.height; y++) {
      const c = packRgb(mixRgb(DESK_TOP, DESK_BOTTOM, y / Math.max(1, this.height - 1)));
      px.fill(c, y * this.width, (y + 1) * this.width);
    }
    this.renderTitleBackground(this.layout.title);
    const L = this.layout;
    const titleW = drawText(
      fb,
      MARGIN + 4,
      9,
      "shadowrelay demo device",
      TITLE_TEXT,
      undefined,
      2,
      L.title,
    ).w;
    drawText(
      fb,
      MARGIN + 4 + titleW + 14,
      17,
      `RFB test picture ${this.width}x${this.height}`,
      TITLE_DIM,
      undefined,
      1,
      L.title,
    );
    for (const p of [L.arena, L.bars, L.typed, L.clipboard, L.log, L.trail]) this.renderPanelChrome(p);
    this.renderColorBars(L.bars.body);
    this.renderArena(L.arena.body);
    fillRect(fb, L.log.body, PANEL_BG);
    this.advanceLog();
    fillRect(fb, L.trail.body, TRAIL_BG);
    const hint = "hold a mouse button and move to draw";
    drawText(
      fb,
      L.trail.body.x + Math.floor((L.trail.body.w - textWidth(hint)) / 2),
      L.trail.body.y + Math.floor((L.trail.body.h - CELL_HEIGHT) / 2),
      hint,
      TRAIL_HINT,
      undefined,
      1,
      L.trail.body,
    );
    this.drawHeaderReadout(L.trail, "pointer -,- mask --------");
    this.drawHeaderReadout(L.typed, "keysym ------ --");
    this.drawTyped();
    this.clipboardLines = ["(no clipboard text received yet)"];
    this.drawClipboard();
    this.drawFrameCounter();
    this.drawClock();
  }

  private renderTitleBackground(r: DemoRect): void {
    const t = this.layout.title;
    for (let y = Math.max(r.y, t.y); y < Math.min(r.y + r.h, t.y + t.h); y++) {
      const c =
        y === t.y + t.h - 1 ? TITLE_EDGE : mixRgb(TITLE_TOP, TITLE_BOTTOM, (y - t.y) / Math.max(1, t.h - 2));
      fillRect(this.fb, makeRect(r.x, y, r.w, 1), c, t);
    }
  }

  private renderPanelChrome(p: Panel): void {
    fillRect(this.fb, p.frame, PANEL_BORDER);
    fillRect(this.fb, p.header, HEADER_BG);
    drawText(this.fb, p.header.x + 6, p.header.y + 4, p.label, HEADER_TEXT, undefined, 1, p.header);
    fillRect(this.fb, p.body, PANEL_BG);
  }

  /** Static colour bars and ramps: every channel at full range, so pixel-format conversions show. */
  private renderColorBars(body: DemoRect): void {
    const fb = this.fb;
    const barH = Math.floor(body.h * 0.55);
    const bars = [0xffffff, 0xffff00, 0x00ffff, 0x00ff00, 0xff00ff, 0xff0000, 0x0000ff, 0x000000];
    for (let i = 0; i < bars.length; i++) {
      const x0 = body.x + Math.floor((body.w * i) / bars.length);
      const x1 = body.x + Math.floor((body.w * (i + 1)) / bars.length);
      fillRect(fb, makeRect(x0, body.y, x1 - x0, barH), bars[i]!, body);
    }
    const ramps = [0xff0000, 0x00ff00, 0x0000ff, 0xffffff];
    const rampTop = body.y + barH;
    const rampsH = body.h - barH;
    const px = pixelView(fb);
    for (let k = 0; k < ramps.length; k++) {
      const y0 = rampTop + Math.floor((rampsH * k) / ramps.length);
      const y1 = rampTop + Math.floor((rampsH * (k + 1)) / ramps.length);
      const clipped = intersectRect(makeRect(body.x, y0, body.w, y1 - y0), fbBounds(fb));
      for (let x = clipped.x; x < clipped.x + clipped.w; x++) {
        const c = packRgb(mixRgb(0x000000, ramps[k]!, (x - body.x) / Math.max(1, body.w - 1)));
        for (let y = clipped.y; y < clipped.y + clipped.h; y++) px[y * fb.width + x] = c;
      }
    }
  }

  /** Redraws the arena inside r: grid background, then the square, then the ball on top. */
  private renderArena(r: DemoRect): DemoRect {
    const fb = this.fb;
    const body = this.layout.arena.body;
    const c = intersectRect(r, body);
    if (isEmptyRect(c)) return c;
    const px = pixelView(fb);
    const bg = packRgb(ARENA_BG);
    const line = packRgb(ARENA_LINE);
    for (let y = c.y; y < c.y + c.h; y++) {
      const row = y * fb.width;
      if ((y - body.y) % ARENA_GRID === 0) {
        px.fill(line, row + c.x, row + c.x + c.w);
        continue;
      }
      px.fill(bg, row + c.x, row + c.x + c.w);
      const first = c.x + ((ARENA_GRID - ((c.x - body.x) % ARENA_GRID)) % ARENA_GRID);
      for (let x = first; x < c.x + c.w; x += ARENA_GRID) px[row + x] = line;
    }
    const s = this.sprites;
    const sq = makeRect(s.squareX, s.squareY, s.squareS, s.squareS);
    fillRect(fb, sq, SQUARE_EDGE, c);
    fillRect(fb, insetRect(sq, 3), SQUARE_FILL, c);
    const label = "RFB";
    drawText(
      fb,
      sq.x + Math.floor((sq.w - textWidth(label)) / 2),
      sq.y + Math.floor((sq.h - CELL_HEIGHT) / 2),
      label,
      SQUARE_TEXT,
      undefined,
      1,
      intersectRect(insetRect(sq, 3), c),
    );
    this.renderBall(c);
    return c;
  }

  /** A shaded ball: brightness falls off from a highlight up and to the left of the centre. */
  private renderBall(clip: DemoRect): void {
    const s = this.sprites;
    const box = intersectRect(discBounds(s.ballX, s.ballY, s.ballR), clip);
    if (isEmptyRect(box)) return;
    const px = pixelView(this.fb);
    const r = s.ballR;
    const limit = r * r + r;
    const hx = s.ballX - r * 0.35;
    const hy = s.ballY - r * 0.35;
    const br = (s.ballColor >>> 16) & 0xff;
    const bgn = (s.ballColor >>> 8) & 0xff;
    const bb = s.ballColor & 0xff;
    const invSpan = 1 / (1.35 * r);
    for (let y = box.y; y < box.y + box.h; y++) {
      const dy = y - s.ballY;
      for (let x = box.x; x < box.x + box.w; x++) {
        const dx = x - s.ballX;
        if (dx * dx + dy * dy > limit) continue;
        const d = Math.sqrt((x - hx) * (x - hx) + (y - hy) * (y - hy)) * invSpan;
        const shade = 1.2 - 0.8 * d;
        const spec = d < 0.2 ? (0.2 - d) * 4 : 0;
        px[y * this.width + x] =
          shadeChannel(br, shade, spec) |
          (shadeChannel(bgn, shade, spec) << 8) |
          (shadeChannel(bb, shade, spec) << 16);
      }
    }
  }

  private moveSprites(): void {
    const body = this.layout.arena.body;
    const before = this.sprites;
    const after = computeSprites(body, this.sceneMs);
    this.sprites = after;
    const regions = [
      [
        discBounds(before.ballX, before.ballY, before.ballR),
        discBounds(after.ballX, after.ballY, after.ballR),
      ],
      [
        makeRect(before.squareX, before.squareY, before.squareS, before.squareS),
        makeRect(after.squareX, after.squareY, after.squareS, after.squareS),
      ],
    ] as const;
    for (const [a, b] of regions) {
      // Adjacent frames overlap, so one rect; after a jump, two small ones beat a long thin union.
      const parts = isEmptyRect(intersectRect(a, b)) ? [a, b] : [unionRect(a, b)];
      for (const p of parts) this.tracker.markDirty(this.renderArena(p));
    }
  }

  /** Adds the log lines due by the current scene time, scrolling with CopyRect. */
  private advanceLog(): void {
    const L = this.layout;
    const due = Math.floor(this.sceneMs / LOG_LINE_INTERVAL_MS) + 1;
    const fresh = due - this.logLinesShown;
    if (fresh <= 0) return;
    const area = L.logText;
    const rows = L.logRows;
    if (rows <= 0 || isEmptyRect(area)) {
      this.logLinesShown = due;
      return;
    }
    const bottom = area.y + (rows - 1) * LOG_LINE_H;
    if (fresh >= rows) {
      // Everything visible is new: one redraw beats `rows` CopyRects of content nobody saw.
      for (let i = 0; i < rows; i++) this.drawLogLine(due - rows + i, area.y + i * LOG_LINE_H);
      this.tracker.markDirty(area);
    } else {
      for (let n = due - fresh; n < due; n++) {
        // Like a terminal: fill from the top, then scroll the panel up one line per new line.
        if (n < rows) {
          this.tracker.markDirty(this.drawLogLine(n, area.y + n * LOG_LINE_H));
          continue;
        }
        if (rows > 1) {
          const src = { x: area.x, y: area.y + LOG_LINE_H };
          const dst = makeRect(area.x, area.y, area.w, (rows - 1) * LOG_LINE_H);
          this.fb.copyRect(src.x, src.y, dst.x, dst.y, dst.w, dst.h);
          this.tracker.recordCopy(src, dst);
        }
        this.tracker.markDirty(this.drawLogLine(n, bottom));
      }
    }
    this.logLinesShown = due;
  }

  private drawLogLine(index: number, y: number): DemoRect {
    const area = this.layout.logText;
    const row = fillRect(this.fb, makeRect(area.x, y, area.w, LOG_LINE_H), PANEL_BG, area);
    const line = logLine(this.seed, index);
    let x = area.x + 2;
    x += drawText(
      this.fb,
      x,
      y,
      `${formatSceneTime(index * LOG_LINE_INTERVAL_MS)} `,
      LOG_TIME,
      undefined,
      1,
      row,
    ).w;
    x += drawText(
      this.fb,
      x,
      y,
      `${line.level.padEnd(5)} `,
      LOG_LEVEL_COLORS[line.level],
      undefined,
      1,
      row,
    ).w;
    drawText(this.fb, x, y, `#${String(index).padStart(6, "0")} ${line.text}`, LOG_TEXT, undefined, 1, row);
    return row;
  }

  private drawFrameCounter(): void {
    const r = this.layout.frameCounter;
    this.renderTitleBackground(r);
    drawText(this.fb, r.x, r.y, `frame ${String(this.frameNo).padStart(7, "0")}`, TITLE_DIM, undefined, 1, r);
    this.tracker.markDirty(intersectRect(r, this.layout.title));
  }

  private drawClock(): void {
    const d = this.clock();
    const text = Number.isNaN(d.getTime())
      ? "--:--:--"
      : [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
    if (text === this.clockText) return;
    this.clockText = text;
    const r = this.layout.clock;
    this.renderTitleBackground(r);
    drawText(this.fb, r.x, r.y, text, CLOCK_TEXT, undefined, 2, r);
    this.tracker.markDirty(intersectRect(r, this.layout.title));
  }

  /** Right-aligned status text in a panel header (pointer and key readouts). */
  private drawHeaderReadout(p: Panel, text: string): void {
    const w = Math.min(p.header.w - textWidth(p.label) - 18, 36 * CELL_WIDTH);
    const r = intersectRect(makeRect(p.header.x + p.header.w - 6 - w, p.header.y, w, p.header.h), p.header);
    if (isEmptyRect(r)) return;
    fillRect(this.fb, r, HEADER_BG);
    drawText(this.fb, r.x + r.w - textWidth(text), p.header.y + 4, text, HEADER_DIM, undefined, 1, r);
    this.tracker.markDirty(r);
  }

  private drawTyped(): void {
    const body = this.layout.typed.body;
    fillRect(this.fb, body, PANEL_BG);
    this.tracker.markDirty(intersectRect(body, fbBounds(this.fb)));
    const scale = 2;
    const cw = CELL_WIDTH * scale;
    const lh = CELL_HEIGHT * scale;
    const cols = Math.floor((body.w - 12) / cw);
    const rows = Math.floor((body.h - 8) / lh);
    if (cols <= 0 || rows <= 0) return;
    const lines: string[] = [];
    for (const para of this.typed.split("\n")) lines.push(...wrapWords(para, cols));
    // A full last line puts the cursor at the start of the next one.
    if ((lines[lines.length - 1] ?? "").length >= cols) lines.push("");
    const visible = lines.slice(-rows);
    for (let i = 0; i < visible.length; i++) {
      drawText(this.fb, body.x + 6, body.y + 4 + i * lh, visible[i]!, TYPED_TEXT, undefined, scale, body);
    }
    const last = visible[visible.length - 1] ?? "";
    const cy = body.y + 4 + (visible.length - 1) * lh;
    fillRect(this.fb, makeRect(body.x + 6 + last.length * cw, cy + 2, 2, lh - 4), CURSOR, body);
  }

  private drawClipboard(): void {
    const body = this.layout.clipboard.body;
    fillRect(this.fb, body, PANEL_BG);
    this.tracker.markDirty(intersectRect(body, fbBounds(this.fb)));
    for (let i = 0; i < this.clipboardLines.length; i++) {
      const color = i === 0 ? HEADER_DIM : CLIP_TEXT;
      drawText(
        this.fb,
        body.x + 6,
        body.y + 4 + i * LOG_LINE_H,
        this.clipboardLines[i]!,
        color,
        undefined,
        1,
        body,
      );
    }
  }
}

/**
 * Text as printable ASCII: "\" and control characters escaped C-style, other code points as \u{…};
 * at most maxChars characters of output, ending in "..." when cut. Only as much input as fits is read,
 * so a 256 KiB clipboard costs no more than a short one.
 */
export function escapeForDisplay(text: string, maxChars: number): string {
  let out = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    let e: string;
    if (cp === 0x5c) e = "\\\\";
    else if (cp >= 0x20 && cp <= 0x7e) e = ch;
    else if (cp === 0x0a) e = "\\n";
    else if (cp === 0x0d) e = "\\r";
    else if (cp === 0x09) e = "\\t";
    else if (cp < 0x100) e = `\\x${cp.toString(16).padStart(2, "0")}`;
    else e = `\\u{${cp.toString(16)}}`;
    if (out.length + e.length > maxChars) {
      const cut = Math.max(0, maxChars - 3);
      return maxChars < 3 ? out.slice(0, maxChars) : `${out.slice(0, cut)}...`;
    }
    out += e;
  }
  return out;
}

// ---- pure scene functions ------------------------------------------------------------------------------

function computeLayout(width: number, height: number): Layout {
  const title = makeRect(0, 0, width, TITLE_H);
  const clockW = textWidth("00:00:00", 2);
  const clock = makeRect(
    width - MARGIN - 4 - clockW,
    Math.floor((TITLE_H - CELL_HEIGHT * 2) / 2),
    clockW,
    CELL_HEIGHT * 2,
  );
  const frameW = textWidth("frame 00000000");
  const frameCounter = makeRect(clock.x - 20 - frameW, 17, frameW, CELL_HEIGHT);
  const top = TITLE_H + MARGIN;
  const contentH = height - MARGIN - top;
  const mid = Math.floor(width / 2);
  const leftX = MARGIN;
  const leftW = mid - MARGIN / 2 - leftX;
  const rightX = mid + MARGIN / 2;
  const rightW = width - MARGIN - rightX;
  const [arenaR, barsR, typedR, clipR] = stack(top, contentH, [0.41, 0.27, 0.18, 0.14]);
  const [logR, trailR] = stack(top, contentH, [0.5, 0.5]);
  const panel = (x: number, w: number, v: { y: number; h: number } | undefined, label: string): Panel => {
    const frame = makeRect(x, v?.y ?? top, w, v?.h ?? 0);
    return {
      frame,
      header: makeRect(frame.x + 1, frame.y + 1, frame.w - 2, HEADER_H),
      body: makeRect(frame.x + 1, frame.y + 2 + HEADER_H, frame.w - 2, frame.h - 3 - HEADER_H),
      label,
    };
  };
  const log = panel(rightX, rightW, logR, "log (scrolls with CopyRect)");
  const logRows = Math.max(0, Math.floor((log.body.h - 6) / LOG_LINE_H));
  return {
    title,
    clock,
    frameCounter,
    arena: panel(leftX, leftW, arenaR, "moving element"),
    bars: panel(leftX, leftW, barsR, "colour bars and ramps"),
    typed: panel(leftX, leftW, typedR, "typed text:"),
    clipboard: panel(leftX, leftW, clipR, "clipboard:"),
    log,
    trail: panel(rightX, rightW, trailR, "pointer trail"),
    logText: makeRect(log.body.x + 4, log.body.y + 3, log.body.w - 8, logRows * LOG_LINE_H),
    logRows,
  };
}

/** Splits a column of height h starting at top into parts by fraction, MARGIN apart. */
function stack(top: number, h: number, fractions: readonly number[]): { y: number; h: number }[] {
  const avail = Math.max(0, h - MARGIN * (fractions.length - 1));
  const out: { y: number; h: number }[] = [];
  let y = top;
  for (let i = 0; i < fractions.length; i++) {
    const ph = i === fractions.length - 1 ? top + avail + MARGIN * i - y : Math.floor(avail * fractions[i]!);
    out.push({ y, h: Math.max(0, ph) });
    y += ph + MARGIN;
  }
  return out;
}

/** Sprite positions as a pure function of scene time: triangle waves, so they bounce off the walls. */
function computeSprites(body: DemoRect, t: number): Sprites {
  const small = Math.min(body.w, body.h);
  const ballR = clampInt(small / 7, 2, 26);
  const squareS = clampInt(small / 6, 6, 40);
  const hue = (t / 40) % 360;
  return {
    ballX: body.x + ballR + Math.round(bounce(t * 0.23, body.w - 2 * ballR - 1)),
    ballY: body.y + ballR + Math.round(bounce(t * 0.17 + 40, body.h - 2 * ballR - 1)),
    ballR,
    ballColor: hsvToRgb(hue, 0.75, 1),
    squareX: body.x + Math.round(bounce(t * 0.11 + 300, body.w - squareS)),
    squareY: body.y + Math.round(bounce(t * 0.19 + 90, body.h - squareS)),
    squareS,
  };
}

/** Position on a segment of length span for a point moving at 1 px/unit, reflecting at both ends. */
function bounce(p: number, span: number): number {
  if (span <= 0) return 0;
  const m = p % (2 * span);
  return m <= span ? m : 2 * span - m;
}

function hsvToRgb(h: number, s: number, v: number): number {
  const f = (n: number): number => {
    const k = (n + h / 60) % 6;
    return Math.round(255 * (v - v * s * Math.max(0, Math.min(k, 4 - k, 1))));
  };
  return (f(5) << 16) | (f(3) << 8) | f(1);
}

/** One channel of the ball: darkened or brightened by shade, then pulled towards white by spec. */
function shadeChannel(v: number, shade: number, spec: number): number {
  const lit = v * shade;
  return Math.max(0, Math.min(255, Math.round(lit + (255 - lit) * spec)));
}

function clampInt(v: number, lo: number, hi: number): number {
  const n = Number.isFinite(v) ? Math.trunc(v) : lo;
  return Math.max(lo, Math.min(hi, n));
}

function formatSceneTime(ms: number): string {
  const tenths = Math.floor(ms / 100);
  const s = Math.floor(tenths / 10);
  const pad = (n: number): string => String(n).padStart(2, "0");
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}.${tenths % 10}`;
}

/**
 * A 32-bit PRNG (mulberry32) seeded from (seed, line index): each log line is a pure function of its index,
 * so skipping a thousand lines after a stall costs nothing and the text never depends on tick timing.
 */
function lineRng(seed: number, index: number): () => number {
  let a = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ENCODINGS = ["raw", "copyrect", "rre", "hextile", "zrle", "tight"] as const;

function logLine(seed: number, index: number): { level: LogLevel; text: string } {
  const rnd = lineRng(seed, index);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const hex = (digits: number): string =>
    int(0, 16 ** digits - 1)
      .toString(16)
      .padStart(digits, "0");
  switch (int(0, 7)) {
    case 0:
      return {
        level: "INFO",
        text: `viewer v${int(1, 9)} FramebufferUpdateRequest incremental=${int(0, 1)}`,
      };
    case 1: {
      const w = int(1, 64) * 16;
      const h = int(1, 32) * 16;
      const enc = ENCODINGS[int(0, ENCODINGS.length - 1)] ?? "raw";
      return {
        level: "DEBUG",
        text: `encode ${enc} ${w}x${h} at ${int(0, 1279)},${int(0, 719)} -> ${int(12, 99999)} bytes`,
      };
    }
    case 2:
      return { level: "INFO", text: `agent dev-${hex(4)} heartbeat ok rtt=${int(1, 180)}ms` };
    case 3:
      return { level: "DEBUG", text: `copyrect log panel dy=-${LOG_LINE_H}` };
    case 4:
      return { level: "WARN", text: `viewer v${int(1, 9)} slow: ${int(2, 9)} updates queued, coalescing` };
    case 5:
      return { level: "INFO", text: `session s-${hex(6)} fan-out to ${int(1, 12)} viewers` };
    case 6:
      return { level: "INFO", text: `audit: ticket issued for user-${int(1, 99)} (view-only)` };
    default:
      return { level: "DEBUG", text: `pointer buttons=${int(0, 7)} at ${int(0, 1279)},${int(0, 719)}` };
  }
}

/** Word wrap at spaces (the breaking space is dropped); a word longer than a line is cut. */
function wrapWords(text: string, cols: number): string[] {
  const out: string[] = [];
  let rest = text;
  while (rest.length > cols) {
    const space = rest.lastIndexOf(" ", cols);
    const cut = space > 0 ? space : cols;
    out.push(rest.slice(0, cut));
    rest = rest.slice(space > 0 ? cut + 1 : cut);
  }
  out.push(rest);
  return out;
}

/** Splits text into lines of exactly cols characters (the last may be shorter); "" gives one empty line. */
function wrapFixed(text: string, cols: number): string[] {
  if (cols <= 0) return [];
  const out: string[] = [];
  for (let i = 0; i < text.length; i += cols) out.push(text.slice(i, i + cols));
  if (out.length === 0) out.push("");
  return out;
}
