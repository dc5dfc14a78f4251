// noVNC 1.7.0's decoders (through test/helpers/novnc.ts) on every recorded session of shared/corpus: the
// outside baseline our decoders are measured against. One task per session, each the whole session from
// its first rect (ZRLE's and Tight's zlib streams cannot start mid-stream), on a fresh session made
// outside the timed part. Throughput counts the pixels of every rect decoded (CopyRect included) and
// the rect bodies' bytes. Every session is checked against expected-final before anything is timed.
// Run: npm run bench -- novnc   (or: bun bench/run.ts novnc)

import { Bench } from "tinybench";
import { RECT_HEADER_LENGTH } from "../relay/rfb/constants.ts";
import {
  type Corpus,
  type CorpusSession,
  compareRgb,
  loadCorpus,
  loadExpectedFinal,
} from "../test/helpers/corpus.ts";
import { createNoVncSession, decodeCorpusWithNoVnc, type NoVncSession } from "../test/helpers/novnc.ts";

const SESSIONS: CorpusSession[] = ["raw", "hextile", "zrle", "tight", "rre", "copyrect"];

interface Row {
  session: CorpusSession;
  mix: string;
  mpx: number;
  mb: number;
  medianMs: number;
  meanMs: number;
  rme: number;
}

/** Rect-body bytes of a session (headers excluded). */
function bodyBytes(corpus: Corpus): number {
  let n = 0;
  for (const u of corpus.index.updates) for (const r of u.rects) n += r.length - RECT_HEADER_LENGTH;
  return n;
}

// The figures mean nothing unless noVNC decodes each session correctly in this harness.
const expected = loadExpectedFinal();
const corpora = SESSIONS.map((name) => {
  const corpus = loadCorpus(name);
  decodeCorpusWithNoVnc(corpus, (cp, rgba) => {
    const bad = compareRgb(rgba, expected);
    if (bad !== 0) throw new Error(`${name}: ${bad} pixels differ at checkpoint ${cp.afterUpdate}`);
  });
  return corpus;
});

const bench = new Bench({
  name: "noVNC decoders",
  time: 2000,
  iterations: 8, // a ZRLE session takes ~0.2 s: the time budget, not the count, bounds the fast ones
  warmup: true,
  warmupTime: 300,
  warmupIterations: 2,
  throws: true,
});
let sink = 0;
for (const corpus of corpora) {
  let session: NoVncSession | undefined;
  bench.add(
    corpus.name,
    () => {
      sink += decodeCorpusWithNoVnc(corpus, undefined, session).pixels;
    },
    {
      beforeEach: () => {
        session = createNoVncSession(corpus.index.width, corpus.index.height);
      },
    },
  );
}
await bench.run();

const rows: Row[] = bench.tasks.map((task, k) => {
  const corpus = corpora[k]!;
  const result = task.result;
  if (result.state !== "completed") throw new Error(`${task.name}: ${result.state}`);
  const { totals } = corpus.index;
  return {
    session: corpus.name,
    mix: Object.entries(totals.rectsByEncoding)
      .map(([enc, n]) => `${enc} ${n}`)
      .join(", "),
    mpx: totals.pixels / 1e6,
    mb: bodyBytes(corpus) / 1e6,
    medianMs: result.latency.p50,
    meanMs: result.latency.mean,
    rme: result.latency.rme,
  };
});

console.log("| session | rects | Mpx | body MB | median ms | mean ms (±rme) | Mpx/s | body MB/s |");
console.log("|---|---|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  const s = r.medianMs / 1000;
  console.log(
    `| ${r.session} | ${r.mix} | ${r.mpx.toFixed(2)} | ${r.mb.toFixed(2)} | ${r.medianMs.toFixed(1)} | ${r.meanMs.toFixed(1)} (±${r.rme.toFixed(1)}%) | ${(r.mpx / s).toFixed(0)} | ${(r.mb / s).toFixed(0)} |`,
  );
}
if (sink < 0) console.log(sink); // keeps the results observable
