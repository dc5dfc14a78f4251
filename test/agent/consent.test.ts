// Consent: the three policies, the ask command's exit status as the answer, its arguments passed without a
// shell, the timeout (the answer is no and the whole process group is gone, checked by pid), and argv
// splitting.

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConsentCommandError, decideConsent, splitCommand } from "../../relay/agent/consent.ts";
import { isPidAlive } from "../peers/rig.ts";

const requester = { name: "alice", role: "operator" };
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "shadowrelay-consent-"));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function waitFor(pred: () => boolean, what: string, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const readPid = (f: string): number => Number.parseInt(readFileSync(f, "utf8").trim(), 10);

describe("policies", () => {
  test("none: granted without running anything", async () => {
    const dir = tempDir();
    const marker = join(dir, "ran");
    const d = await decideConsent({ policy: "none", command: ["/usr/bin/touch", marker], requester });
    expect(d).toEqual({ granted: true, reason: "policy none" });
    await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(marker)).toBe(false);
  });

  test("notify: granted at once, the command runs with the requester's name and role", async () => {
    const dir = tempDir();
    const out = join(dir, "args");
    const script = 'sleep 0.2; printf "%s|" "$@" > "$0"';
    const started = Date.now();
    const d = await decideConsent({ policy: "notify", command: ["/bin/sh", "-c", script, out], requester });
    expect(d).toEqual({ granted: true, reason: "policy notify" });
    expect(Date.now() - started).toBeLessThan(150); // it did not wait for the command
    await waitFor(() => existsSync(out) && readFileSync(out, "utf8").length > 0, "notify command output");
    expect(readFileSync(out, "utf8")).toBe("alice|operator|");
  });

  test("notify without a command, or with one that cannot start: still granted", async () => {
    expect(await decideConsent({ policy: "notify", requester })).toEqual({
      granted: true,
      reason: "policy notify",
    });
    expect(
      await decideConsent({ policy: "notify", command: ["/nonexistent/notify-send"], requester }),
    ).toEqual({ granted: true, reason: "notify command failed" });
  });

  test("ask: /bin/true is yes, /bin/false is no", async () => {
    expect(await decideConsent({ policy: "ask", command: "/bin/true", requester })).toEqual({
      granted: true,
      reason: "user accepted",
    });
    expect(await decideConsent({ policy: "ask", command: "/bin/false", requester })).toEqual({
      granted: false,
      reason: "user refused",
    });
    expect(await decideConsent({ policy: "ask", command: ["/bin/sh", "-c", "exit 7"], requester })).toEqual({
      granted: false,
      reason: "user refused",
    });
  });

  test("ask without a command: no way to ask, so no; a command that cannot start: no", async () => {
    expect(await decideConsent({ policy: "ask", requester })).toEqual({
      granted: false,
      reason: "no way to ask",
    });
    expect(await decideConsent({ policy: "ask", command: "/nonexistent/ask", requester })).toEqual({
      granted: false,
      reason: "command failed",
    });
    expect(
      await decideConsent({ policy: "ask", command: ["/bin/sh", "-c", "kill -9 $$"], requester }),
    ).toEqual({
      granted: false,
      reason: "command failed",
    });
  });

  test("ask: the name and role are plain arguments, never shell text", async () => {
    const dir = tempDir();
    const out = join(dir, "args");
    const evil = { name: '$(touch pwned); `id` "quoted" -rf', role: "admin" };
    const d = await decideConsent({
      policy: "ask",
      command: ["/bin/sh", "-c", 'printf "%s\\n" "$@" > "$0"', out],
      requester: evil,
    });
    expect(d.granted).toBe(true);
    expect(readFileSync(out, "utf8")).toBe(`${evil.name}\nadmin\n`);
    expect(existsSync(join(dir, "pwned"))).toBe(false);
    expect(existsSync("pwned")).toBe(false);
  });

  test("control characters in the name are replaced", async () => {
    const dir = tempDir();
    const out = join(dir, "args");
    await decideConsent({
      policy: "ask",
      command: ["/bin/sh", "-c", 'printf "%s|" "$@" > "$0"', out],
      requester: { name: "bob\nrm -rf /\u0000\u202e", role: "" },
    });
    expect(readFileSync(out, "utf8")).toBe("bob?rm -rf /??|?|");
  });
});

describe("the timeout", () => {
  test("ask that does not answer in time: no, and the command and its children are gone", async () => {
    const dir = tempDir();
    const leader = join(dir, "leader");
    const child = join(dir, "child");
    // The leader ignores SIGTERM and starts a child that sleeps: only a group SIGKILL ends both.
    const script = `trap "" TERM; echo $$ > ${leader}; sleep 30 & echo $! > ${child}; wait`;
    const started = Date.now();
    const d = await decideConsent({
      policy: "ask",
      command: ["/bin/sh", "-c", script],
      requester,
      timeoutMs: 300,
      killGraceMs: 100,
    });
    expect(d).toEqual({ granted: false, reason: "timeout" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(Date.now() - started).toBeLessThan(3_000);
    const pids = [readPid(leader), readPid(child)];
    expect(pids.every((p) => p > 1)).toBe(true);
    await waitFor(() => pids.every((p) => !isPidAlive(p)), `pids ${pids.join(", ")} gone`);
  });

  test("a notify command that outlives the timeout is ended too", async () => {
    const dir = tempDir();
    const pidFile = join(dir, "pid");
    const d = await decideConsent({
      policy: "notify",
      command: ["/bin/sh", "-c", `echo $$ > ${pidFile}; exec sleep 30`],
      requester,
      timeoutMs: 200,
      killGraceMs: 100,
    });
    expect(d.granted).toBe(true);
    await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "", "pid file");
    const pid = readPid(pidFile);
    expect(isPidAlive(pid)).toBe(true);
    await waitFor(() => !isPidAlive(pid), `notify pid ${pid} gone`);
  });
});

describe("splitCommand", () => {
  test("blanks separate, quotes group, nothing is expanded", () => {
    expect(splitCommand("zenity --question --text 'Allow shadowing?'")).toEqual([
      "zenity",
      "--question",
      "--text",
      "Allow shadowing?",
    ]);
    expect(splitCommand(`  /opt/my\\ app/ask  "a \\"b\\" c" '' $HOME ~ *  `)).toEqual([
      "/opt/my app/ask",
      'a "b" c',
      "",
      "$HOME",
      "~",
      "*",
    ]);
    expect(() => splitCommand("ask 'open")).toThrow(ConsentCommandError);
    expect(splitCommand("")).toEqual([]);
  });
});
