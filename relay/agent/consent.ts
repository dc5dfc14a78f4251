// The device user's consent to a session (DESIGN.md "Consent"; issue #4 "Gateway mode"): policy none (no
// question), notify (tell the user, do not wait), or ask (run --consent-command with the requester's name and
// role; exit status 0 means yes, anything else or the timeout means no). The command runs without a shell
// (its argv is split here, quotes honoured, nothing expanded), in its own process group so a timeout kills the
// dialog it started too (TigerVNC's QueryConnect likewise rejects when its timeout passes).

export type ConsentPolicy = "none" | "notify" | "ask";

export const CONSENT_POLICIES: readonly ConsentPolicy[] = ["none", "notify", "ask"];

export const CONSENT_DEFAULTS = Object.freeze({
  /** Milliseconds the user has to answer; then the answer is no. Also bounds a notify command. @default 30000 */
  timeoutMs: 30_000,
  /** Milliseconds between SIGTERM and SIGKILL to the command's process group. @default 1000 */
  killGraceMs: 1_000,
  /** Characters of the requester's name passed on (control characters become "?"). @default 256 */
  maxNameLength: 256,
});

export interface ConsentRequest {
  policy: ConsentPolicy;
  /** argv, or a command line split by splitCommand (no shell). */
  command?: string | readonly string[];
  requester: { name: string; role: string };
  /** @default CONSENT_DEFAULTS.timeoutMs */
  timeoutMs?: number;
  /** @default CONSENT_DEFAULTS.killGraceMs */
  killGraceMs?: number;
}

export interface ConsentDecision {
  granted: boolean;
  /** For the relay's audit (relay/gateway/protocol.ts ConsentMsg.reason). */
  reason:
    | "policy none"
    | "policy notify"
    | "notify command failed"
    | "user accepted"
    | "user refused"
    | "timeout"
    | "command failed"
    | "no way to ask";
}

export class ConsentCommandError extends Error {
  override name = "ConsentCommandError";
}

/**
 * A command line as argv, the way a user writes it in --consent-command: words separated by blanks, '…' and
 * "…" group words with blanks, a backslash escapes the next character outside single quotes. Nothing is
 * expanded ($, *, ~ are plain characters): it is never given to a shell.
 */
export function splitCommand(line: string): string[] {
  const out: string[] = [];
  let word = "";
  let inWord = false;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < line.length) word += line[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(word);
      word = "";
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) throw new ConsentCommandError(`unterminated ${quote} in the consent command`);
  if (inWord) out.push(word);
  return out;
}

/** The requester's name as an argument: control characters replaced, capped, never empty. */
function argText(s: string, max: number): string {
  const clean = [...s]
    .slice(0, max)
    .map((c) => (/[\p{Cc}\p{Cf}]/u.test(c) ? "?" : c))
    .join("");
  return clean.length > 0 ? clean : "?";
}

function argvOf(command: string | readonly string[]): string[] {
  const argv = typeof command === "string" ? splitCommand(command) : [...command];
  if (argv.length === 0 || argv[0] === "") throw new ConsentCommandError("empty consent command");
  return argv;
}

/** Resolves "slept" after ms; cancel() clears the timer so a finished race keeps nothing alive. */
function sleep(ms: number): { done: Promise<"slept">; cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = new Promise<"slept">((r) => {
    timer = setTimeout(() => r("slept"), ms);
  });
  return { done, cancel: () => clearTimeout(timer) };
}

/** Signals the whole process group of a detached child (its pid is the group id); gone is fine. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

/** Ends the group: SIGTERM, up to graceMs for the leader to go, then SIGKILL to what is left; waits for the leader. */
async function killGroup(child: ReturnType<typeof Bun.spawn>, graceMs: number): Promise<void> {
  signalGroup(child.pid, "SIGTERM");
  const grace = sleep(graceMs);
  await Promise.race([child.exited, grace.done]);
  grace.cancel();
  // Members that ignored SIGTERM (or a leader that did). The group id stays reserved while any member
  // lives, so this cannot reach an unrelated process.
  signalGroup(child.pid, "SIGKILL");
  child.kill("SIGKILL"); // the leader itself, should the group signal have missed it
  await child.exited;
}

function spawnDetached(argv: string[]): ReturnType<typeof Bun.spawn> {
  return Bun.spawn(argv, {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "ignore",
    // setsid(): the command leads its own process group, so a timeout can end everything it started.
    detached: true,
  });
}

/**
 * Applies the policy. none: granted. notify: runs the command (if any) without waiting, granted (a notify
 * command still running at the timeout is ended). ask: runs the command with the requester's name and role
 * appended as two arguments, granted only on exit status 0 within the timeout; on timeout the process group
 * is killed and waited for before the answer. ask without a command: refused, "no way to ask".
 */
export async function decideConsent(req: ConsentRequest): Promise<ConsentDecision> {
  const timeoutMs = req.timeoutMs ?? CONSENT_DEFAULTS.timeoutMs;
  const graceMs = req.killGraceMs ?? CONSENT_DEFAULTS.killGraceMs;
  const args = [
    argText(req.requester.name, CONSENT_DEFAULTS.maxNameLength),
    argText(req.requester.role, CONSENT_DEFAULTS.maxNameLength),
  ];
  switch (req.policy) {
    case "none":
      return { granted: true, reason: "policy none" };
    case "notify": {
      if (req.command === undefined) return { granted: true, reason: "policy notify" };
      try {
        const child = spawnDetached([...argvOf(req.command), ...args]);
        child.unref();
        const timer = setTimeout(() => void killGroup(child, graceMs), timeoutMs);
        timer.unref();
        void child.exited.then(() => clearTimeout(timer));
        return { granted: true, reason: "policy notify" };
      } catch {
        return { granted: true, reason: "notify command failed" };
      }
    }
    case "ask": {
      if (req.command === undefined) return { granted: false, reason: "no way to ask" };
      let child: ReturnType<typeof Bun.spawn>;
      try {
        child = spawnDetached([...argvOf(req.command), ...args]);
      } catch {
        return { granted: false, reason: "command failed" };
      }
      const deadline = sleep(timeoutMs);
      const outcome = await Promise.race([child.exited, deadline.done]);
      deadline.cancel();
      if (outcome === "slept") {
        await killGroup(child, graceMs);
        return { granted: false, reason: "timeout" };
      }
      if (child.signalCode !== null) return { granted: false, reason: "command failed" };
      return outcome === 0
        ? { granted: true, reason: "user accepted" }
        : { granted: false, reason: "user refused" };
    }
    default:
      throw new ConsentCommandError(`unknown consent policy ${String(req.policy satisfies never)}`);
  }
}
