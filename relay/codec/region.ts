// Region arithmetic for dirty tracking: the broadcast engine keeps one Region per viewer (everything that
// changed since that viewer's last update) and answers each FramebufferUpdateRequest from it
// (rfb-codecs.md §5 and §9.3: per-viewer dirty regions, not per-viewer framebuffer copies).
//
// Representation: y-banded, as X11/pixman regions and TigerVNC common/rfb/Region. A region is a list of
// bands sorted by y, disjoint in y; each band holds disjoint, sorted, non-touching x-spans, and two bands
// that touch vertically never hold the same spans (they are coalesced into one). That form is canonical:
// a set of pixels has exactly one representation, so equal regions give identical rects() however they
// were built. Every coordinate is half-open: a band covers y1 ≤ y < y2, a span x1 ≤ x < x2.
//
// Regions are IMMUTABLE. Every operation returns a new Region (or `this` when nothing changes), and the
// bands are private, so one region handed to many viewers cannot change under any of them.

import { RfbError } from "../rfb/errors.ts";

export interface RegionRect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/**
 * Largest |coordinate| a region accepts (rect edges, translated edges). 2^24 keeps every area exact in a
 * double (2^25 × 2^25 = 2^50 < 2^53) and is far past RFB's u16 geometry even after a translation.
 */
export const REGION_COORD_LIMIT = 2 ** 24;

/**
 * One horizontal band: spans xs = [x1, x2, x1, x2, …] over rows y1 ≤ y < y2. Only the sweep that builds a
 * region extends y2 (emit); once the region exists its bands and span arrays never change, so regions share them.
 */
interface Band {
  y1: number;
  y2: number;
  xs: readonly number[];
}

const UNION = 0;
const INTERSECT = 1;
const SUBTRACT = 2;
type Op = typeof UNION | typeof INTERSECT | typeof SUBTRACT;

export class Region {
  static readonly empty: Region = new Region([]);

  readonly #bands: readonly Band[];
  /** Number of rects rects() returns. */
  readonly rectCount: number;
  /** Pixels covered. */
  readonly area: number;
  /** Smallest rect covering the region (frozen); null when the region is empty. */
  readonly bounds: Readonly<RegionRect> | null;

  private constructor(bands: readonly Band[]) {
    this.#bands = bands;
    let count = 0;
    let area = 0;
    let x1 = Infinity;
    let x2 = -Infinity;
    for (const b of bands) {
      count += b.xs.length / 2;
      area += spanWidth(b.xs) * (b.y2 - b.y1);
      x1 = Math.min(x1, b.xs[0]!);
      x2 = Math.max(x2, b.xs[b.xs.length - 1]!);
    }
    this.rectCount = count;
    this.area = area;
    const first = bands[0];
    const last = bands[bands.length - 1];
    this.bounds =
      first && last ? Object.freeze({ x: x1, y: first.y1, w: x2 - x1, h: last.y2 - first.y1 }) : null;
  }

  /** The region of one rect; a rect with w or h ≤ 0 gives the empty region. */
  static fromRect(r: RegionRect): Region {
    const band = rectBand(r);
    return band ? new Region([band]) : Region.empty;
  }

  /** The union of possibly overlapping rects; rects with w or h ≤ 0 are ignored. */
  static fromRects(rects: Iterable<RegionRect>): Region {
    const single: Band[] = [];
    for (const r of rects) {
      const band = rectBand(r);
      if (band) single.push(band);
    }
    // Neighbours in y (then x) end up merged early, so the pairwise merges below stay small.
    single.sort((p, q) => p.y1 - q.y1 || p.xs[0]! - q.xs[0]!);
    let level: Band[][] = single.map((b) => [b]);
    if (level.length === 0) return Region.empty;
    // Bottom-up pairwise union: log2(n) rounds, each linear in the size of the regions it merges.
    while (level.length > 1) {
      const next: Band[][] = [];
      for (let i = 0; i < level.length; i += 2) {
        const b = level[i + 1];
        next.push(b ? combine(level[i]!, b, UNION) : level[i]!);
      }
      level = next;
    }
    return new Region(level[0]!);
  }

  /** The bands of a region, or the single band of a rect. */
  static #bandsOf(v: Region | RegionRect): readonly Band[] {
    if (v instanceof Region) return v.#bands;
    const band = rectBand(v);
    return band ? [band] : [];
  }

  get isEmpty(): boolean {
    return this.#bands.length === 0;
  }

  /** Disjoint rects sorted by y, then x; a fresh array the caller owns. */
  rects(): RegionRect[] {
    const out: RegionRect[] = [];
    for (const b of this.#bands) {
      for (let i = 0; i < b.xs.length; i += 2) {
        out.push({ x: b.xs[i]!, y: b.y1, w: b.xs[i + 1]! - b.xs[i]!, h: b.y2 - b.y1 });
      }
    }
    return out;
  }

  /** Whether pixel (x, y) is in the region. Binary search over bands, then over spans. */
  contains(x: number, y: number): boolean {
    const bands = this.#bands;
    let lo = 0;
    let hi = bands.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (bands[mid]!.y2 <= y) lo = mid + 1;
      else hi = mid;
    }
    const band = bands[lo];
    if (!band || band.y1 > y) return false;
    const xs = band.xs;
    lo = 0;
    hi = xs.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (xs[2 * mid + 1]! <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo < xs.length / 2 && xs[2 * lo]! <= x;
  }

  /** Same pixels. Canonical form makes this a structural comparison. */
  equals(other: Region): boolean {
    const a = this.#bands;
    const b = other.#bands;
    if (a === b) return true;
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) {
      const p = a[i]!;
      const q = b[i]!;
      if (p.y1 !== q.y1 || p.y2 !== q.y2 || !sameSpans(p.xs, q.xs)) return false;
    }
    return true;
  }

  union(other: Region | RegionRect): Region {
    const b = Region.#bandsOf(other);
    if (b.length === 0) return this;
    if (this.#bands.length === 0) return other instanceof Region ? other : new Region(b);
    return new Region(combine(this.#bands, b, UNION));
  }

  intersect(other: Region | RegionRect): Region {
    const b = Region.#bandsOf(other);
    if (b.length === 0 || this.#bands.length === 0) return Region.empty;
    return new Region(combine(this.#bands, b, INTERSECT));
  }

  subtract(other: Region | RegionRect): Region {
    const b = Region.#bandsOf(other);
    if (b.length === 0 || this.#bands.length === 0) return this;
    return new Region(combine(this.#bands, b, SUBTRACT));
  }

  /** The region moved by (dx, dy). Throws INTERNAL past REGION_COORD_LIMIT. */
  translate(dx: number, dy: number): Region {
    checkCoord(dx, "translate dx");
    checkCoord(dy, "translate dy");
    const box = this.bounds;
    if (!box || (dx === 0 && dy === 0)) return this;
    checkCoord(box.x + dx, "translated x");
    checkCoord(box.x + box.w + dx, "translated right edge");
    checkCoord(box.y + dy, "translated y");
    checkCoord(box.y + box.h + dy, "translated bottom edge");
    return new Region(
      this.#bands.map((b) => ({ y1: b.y1 + dy, y2: b.y2 + dy, xs: b.xs.map((x) => x + dx) })),
    );
  }

  /** The part inside a width × height framebuffer at the origin. */
  clip(width: number, height: number): Region {
    checkCoord(width, "clip width");
    checkCoord(height, "clip height");
    const box = this.bounds;
    if (!box || width <= 0 || height <= 0) return Region.empty;
    if (box.x >= 0 && box.y >= 0 && box.x + box.w <= width && box.y + box.h <= height) return this;
    return this.intersect({ x: 0, y: 0, w: width, h: height });
  }

  /**
   * A region covering at least these pixels, inside bounds, in at most maxRects rects (maxRects: integer ≥ 1).
   * Returns `this` when it already has at most maxRects rects.
   *
   * Algorithm: band-wise greedy merging. Any set of rects that is not band-aligned can take O(k²) rects once
   * put back in banded form, so merging bounding boxes of arbitrary rect pairs cannot promise a rect count;
   * this works on the bands instead. The bands start as "rows"; two moves remove rects:
   *   - fill a gap between two neighbouring spans of a row (removes one rect, costs gap width × row height);
   *   - merge a row with the next one into one row spanning both (and any vertical gap between them) whose
   *     spans are the union of theirs (removes the spans that overlapped or touched; if none did, the move
   *     also fills the narrowest gap of the merged row so that every move removes at least one rect).
   * A min-heap orders all moves by added area per rect removed (a move that removes two rects for 30 px
   * beats one that removes one for 20 px); the cheapest runs until the count fits. Filling spans in a row
   * never makes a rect appear, and the final banded form only coalesces, so the count can only fall. Rows
   * only grow within their own x-extent and y-range, so the result stays inside bounds.
   * Costs: heap entries are invalidated lazily by version stamps, and a merge priced before a gap fill
   * changed one of its rows is re-priced when it reaches the top (a merge that got cheaper meanwhile waits
   * at its old price: greedy, not optimal). O(n log n) for n rects when rows stay narrow; a merge costs
   * O(spans of the two rows), so a row that keeps absorbing its neighbours makes the worst case O(n · widest
   * row). maxRects = 1 is simply the bounds, the only rect that both covers the region and stays inside it.
   */
  coalesce(maxRects: number): Region {
    if (!Number.isSafeInteger(maxRects) || maxRects < 1) {
      throw new RfbError("INTERNAL", `region coalesce: maxRects ${maxRects} is not an integer ≥ 1`);
    }
    if (this.rectCount <= maxRects) return this;
    if (maxRects === 1 && this.bounds) return Region.fromRect(this.bounds);
    return new Region(coalesceBands(this.#bands, this.rectCount, maxRects));
  }
}

function checkCoord(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || Math.abs(v) > REGION_COORD_LIMIT) {
    throw new RfbError("INTERNAL", `region ${what}: ${v} is not an integer within ±${REGION_COORD_LIMIT}`);
  }
}

/** The band of a rect, or null when w or h ≤ 0. Throws INTERNAL for non-integers or coordinates out of range. */
function rectBand(r: RegionRect): Band | null {
  if (
    !Number.isSafeInteger(r.x) ||
    !Number.isSafeInteger(r.y) ||
    !Number.isSafeInteger(r.w) ||
    !Number.isSafeInteger(r.h)
  ) {
    throw new RfbError("INTERNAL", `region rect: ${r.x},${r.y} ${r.w}×${r.h} is not in integers`);
  }
  if (r.w <= 0 || r.h <= 0) return null;
  checkCoord(r.x, "rect x");
  checkCoord(r.y, "rect y");
  checkCoord(r.x + r.w, "rect right edge");
  checkCoord(r.y + r.h, "rect bottom edge");
  return { y1: r.y, y2: r.y + r.h, xs: [r.x, r.x + r.w] };
}

function spanWidth(xs: readonly number[]): number {
  let w = 0;
  for (let i = 0; i < xs.length; i += 2) w += xs[i + 1]! - xs[i]!;
  return w;
}

function sameSpans(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Appends a band, coalescing it into the previous one when they touch and hold the same spans. */
function emit(out: Band[], y1: number, y2: number, xs: readonly number[]): void {
  if (xs.length === 0) return;
  const last = out[out.length - 1];
  if (last && last.y2 === y1 && sameSpans(last.xs, xs)) last.y2 = y2;
  else out.push({ y1, y2, xs });
}

/**
 * The y-sweep shared by union, intersect and subtract (pixman's miRegionOp): walk both band lists, cut
 * at every band edge, and combine the spans of whatever overlaps each slice. Pieces of `a` alone survive
 * union and subtract, pieces of `b` alone only union.
 */
function combine(a: readonly Band[], b: readonly Band[], op: Op): Band[] {
  const out: Band[] = [];
  const keepA = op !== INTERSECT;
  const keepB = op === UNION;
  let i = 0;
  let j = 0;
  let y = -Infinity; // everything above y is done; a[i] and b[j] both end below it
  while (i < a.length && j < b.length) {
    const ba = a[i]!;
    const bb = b[j]!;
    const ta = Math.max(y, ba.y1);
    const tb = Math.max(y, bb.y1);
    if (ta < tb) {
      const bottom = Math.min(ba.y2, tb);
      if (keepA) emit(out, ta, bottom, ba.xs);
      y = bottom;
    } else if (tb < ta) {
      const bottom = Math.min(bb.y2, ta);
      if (keepB) emit(out, tb, bottom, bb.xs);
      y = bottom;
    } else {
      const bottom = Math.min(ba.y2, bb.y2);
      const xs =
        op === UNION
          ? unionSpans(ba.xs, bb.xs)
          : op === INTERSECT
            ? intersectSpans(ba.xs, bb.xs)
            : subtractSpans(ba.xs, bb.xs);
      emit(out, ta, bottom, xs);
      y = bottom;
    }
    if (ba.y2 <= y) i++;
    if (bb.y2 <= y) j++;
  }
  if (keepA) for (; i < a.length; i++) emit(out, Math.max(y, a[i]!.y1), a[i]!.y2, a[i]!.xs);
  if (keepB) for (; j < b.length; j++) emit(out, Math.max(y, b[j]!.y1), b[j]!.y2, b[j]!.xs);
  return out;
}

function unionSpans(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let x1: number;
    let x2: number;
    if (j >= b.length || (i < a.length && a[i]! <= b[j]!)) {
      x1 = a[i]!;
      x2 = a[i + 1]!;
      i += 2;
    } else {
      x1 = b[j]!;
      x2 = b[j + 1]!;
      j += 2;
    }
    const n = out.length;
    // Touching spans merge too (x1 === previous x2): the canonical form never has two spans meeting.
    if (n > 0 && x1 <= out[n - 1]!) out[n - 1] = Math.max(out[n - 1]!, x2);
    else out.push(x1, x2);
  }
  return out;
}

function intersectSpans(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x1 = Math.max(a[i]!, b[j]!);
    const x2 = Math.min(a[i + 1]!, b[j + 1]!);
    if (x1 < x2) out.push(x1, x2);
    if (a[i + 1]! < b[j + 1]!) i += 2;
    else j += 2;
  }
  return out;
}

function subtractSpans(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < a.length; i += 2) {
    let x = a[i]!;
    const end = a[i + 1]!;
    while (j < b.length && b[j + 1]! <= x) j += 2; // b spans wholly left of this a span
    // b spans are disjoint and never touch, so each one after b[j] starts right of the last cut.
    for (let k = j; k < b.length && b[k]! < end; k += 2) {
      if (b[k]! > x) out.push(x, b[k]!);
      x = b[k + 1]!;
      if (x >= end) break;
    }
    if (x < end) out.push(x, end);
  }
  return out;
}

/** A row of Region.coalesce: one or more merged bands. Index-linked so merges are O(1) relinks. */
interface Row {
  y1: number;
  y2: number;
  /** Private copy: gap fills splice it. */
  xs: number[];
  /** Sum of span widths. */
  width: number;
  prev: number;
  next: number;
  alive: boolean;
  /** Bumped on every change; merge moves computed from an older version are re-priced when popped. */
  ver: number;
  /** Bumped when the row's geometry changes (a merge); its gap list is rebuilt then. */
  geom: number;
  /** The row's gaps as [left edge, width], narrowest first; gaps[gapNext] is the next one to fill. */
  gaps: [number, number][];
  gapNext: number;
  /** Ticket of the one live merge move for (this row, next row); older tickets are discarded. */
  pairTicket: number;
}

const FILL_GAP = 0;
const MERGE_ROWS = 1;

interface Move {
  /** Added area per rect removed. */
  key: number;
  kind: typeof FILL_GAP | typeof MERGE_ROWS;
  row: number;
  /** FILL_GAP: the row's geom; MERGE_ROWS: the row's pairTicket. */
  stamp: number;
  /** FILL_GAP: index into gaps; MERGE_ROWS: the rows' ver when priced. */
  a: number;
  b: number;
}

/** Binary min-heap of moves by key. */
class MoveHeap {
  readonly #items: Move[] = [];

  peekKey(): number {
    return this.#items[0]?.key ?? Infinity;
  }

  push(m: Move): void {
    const h = this.#items;
    let i = h.length;
    h.push(m);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.key <= m.key) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = m;
  }

  pop(): Move | undefined {
    const h = this.#items;
    const top = h[0];
    const last = h.pop();
    if (h.length === 0 || !last) return top;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= h.length) break;
      if (c + 1 < h.length && h[c + 1]!.key < h[c]!.key) c++;
      if (h[c]!.key >= last.key) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
    return top;
  }
}

/** The gaps of a span list as [left edge, width] pairs, narrowest first (ties by x: deterministic). */
function gapsOf(xs: readonly number[]): [number, number][] {
  const gaps: [number, number][] = [];
  for (let i = 1; i + 1 < xs.length; i += 2) gaps.push([xs[i]!, xs[i + 1]! - xs[i]!]);
  return gaps.sort((p, q) => p[1] - q[1] || p[0] - q[0]);
}

/** Fills the gap whose left edge is gx (a span ends there); returns its width. */
function fillGap(xs: number[], gx: number): number {
  let lo = 0;
  let hi = xs.length / 2;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[2 * mid + 1]! < gx) lo = mid + 1;
    else hi = mid;
  }
  const at = 2 * lo + 1;
  if (xs[at] !== gx || at + 1 >= xs.length) {
    throw new RfbError("INTERNAL", `region coalesce: no gap at x=${gx}`);
  }
  const w = xs[at + 1]! - gx;
  xs.splice(at, 2);
  return w;
}

/** What merging row a with row b gives: spans, rects removed, added area. */
function planMerge(a: Row, b: Row): { xs: number[]; saved: number; cost: number } {
  const xs = unionSpans(a.xs, b.xs);
  const h = b.y2 - a.y1;
  let saved = (a.xs.length + b.xs.length - xs.length) / 2;
  let cost = spanWidth(xs) * h - a.width * (a.y2 - a.y1) - b.width * (b.y2 - b.y1);
  if (saved === 0) {
    // Nothing overlapped: also fill the narrowest gap, so that the move removes one rect.
    cost += fillGap(xs, gapsOf(xs)[0]![0]) * h;
    saved = 1;
  }
  return { xs, saved, cost };
}

function coalesceBands(bands: readonly Band[], count: number, maxRects: number): Band[] {
  const rows: Row[] = bands.map((b, i) => ({
    y1: b.y1,
    y2: b.y2,
    xs: b.xs.slice(),
    width: spanWidth(b.xs),
    prev: i - 1,
    next: i + 1 < bands.length ? i + 1 : -1,
    alive: true,
    ver: 0,
    geom: 0,
    gaps: gapsOf(b.xs),
    gapNext: 0,
    pairTicket: 0,
  }));
  const heap = new MoveHeap();
  const pushGap = (r: number): void => {
    const row = rows[r]!;
    const gap = row.gaps[row.gapNext];
    if (!gap) return;
    heap.push({
      key: gap[1] * (row.y2 - row.y1),
      kind: FILL_GAP,
      row: r,
      stamp: row.geom,
      a: row.gapNext,
      b: 0,
    });
  };
  const pushMerge = (r: number): void => {
    const row = rows[r]!;
    if (row.next < 0) return;
    const next = rows[row.next]!;
    const plan = planMerge(row, next);
    row.pairTicket++;
    heap.push({
      key: plan.cost / plan.saved,
      kind: MERGE_ROWS,
      row: r,
      stamp: row.pairTicket,
      a: row.ver,
      b: next.ver,
    });
  };
  for (let r = 0; r < rows.length; r++) {
    pushGap(r);
    pushMerge(r);
  }

  while (count > maxRects) {
    const m = heap.pop();
    // Unreachable while count > 1: every gap and every pair of neighbouring rows has a live move.
    if (!m) throw new RfbError("INTERNAL", "region coalesce: ran out of moves");
    const row = rows[m.row]!;
    if (!row.alive) continue;
    if (m.kind === FILL_GAP) {
      if (m.stamp !== row.geom || m.a !== row.gapNext) continue;
      row.width += fillGap(row.xs, row.gaps[row.gapNext]![0]);
      row.gapNext++;
      row.ver++;
      count--;
      pushGap(m.row);
      continue;
    }
    if (m.stamp !== row.pairTicket || row.next < 0) continue;
    const next = rows[row.next]!;
    const plan = planMerge(row, next);
    if ((m.a !== row.ver || m.b !== next.ver) && plan.cost / plan.saved > heap.peekKey()) {
      // A gap fill changed one of the rows since this move was priced; it is now dearer than the best.
      row.pairTicket++;
      heap.push({ ...m, key: plan.cost / plan.saved, stamp: row.pairTicket, a: row.ver, b: next.ver });
      continue;
    }
    row.y2 = next.y2;
    row.xs = plan.xs;
    row.width = spanWidth(plan.xs);
    row.ver++;
    row.geom++;
    row.gaps = gapsOf(plan.xs);
    row.gapNext = 0;
    next.alive = false;
    row.next = next.next;
    if (next.next >= 0) rows[next.next]!.prev = m.row;
    count -= plan.saved;
    pushGap(m.row);
    pushMerge(m.row);
    if (row.prev >= 0) pushMerge(row.prev);
  }

  const out: Band[] = [];
  for (let r = 0; r >= 0; r = rows[r]!.next) emit(out, rows[r]!.y1, rows[r]!.y2, rows[r]!.xs);
  return out;
}
