// `shadowrelay admin`: the relay's HTTP API from a shell (DESIGN.md "Contract"), JSON out. A client of
// relay/control/api.ts and nothing else. The bearer token from `login` is kept per relay URL in
// $XDG_CONFIG_HOME/shadowrelay/tokens.json (mode 0600); the relay's certificate is pinned as the only CA
// (--ca, default data/tls/cert.pem when present), or not checked with --insecure (said loudly).

import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";

export const ADMIN_HELP = `shadowrelay admin [--relay URL] [--ca FILE | --insecure] COMMAND …

  login NAME [--password P]          log in (password from --password, $SHADOWRELAY_PASSWORD or stdin)
  logout
  me
  users                              list users (admin)
  useradd NAME [--role operator|admin] [--password P]
  passwd NAME [--password P]         set a user's password (admin)
  disable NAME                       disable a user (admin)
  devices                            list devices
  enroll NAME                        create a one-time enrollment token and the agent command (admin)
  session DEVICE [--view-only] [--native]
                                     start a pipe session; prints its id, ticket and viewer URL
  ticket SESSION [--native]          a further viewer ticket
  sessions [--active]                list sessions
  end SESSION                        end a session
  audit [--kind K] [--actor A] [--limit N]
  verify                             verify the audit chain

--relay defaults to $SHADOWRELAY_URL or https://127.0.0.1:8443.`;

type Fail = (msg: string) => never;

function tokenFile(): string {
  const base = process.env.XDG_CONFIG_HOME ?? join(homedir(), ".config");
  return join(base, "shadowrelay", "tokens.json");
}

function readTokens(): Record<string, string> {
  try {
    return JSON.parse(readFileSync(tokenFile(), "utf8")) as Record<string, string>;
  } catch {
    return {};
  }
}

function saveToken(relay: string, token: string | null): void {
  const tokens = readTokens();
  if (token === null) delete tokens[relay];
  else tokens[relay] = token;
  const file = tokenFile();
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, JSON.stringify(tokens, null, 2), { mode: 0o600 });
  chmodSync(file, 0o600);
}

async function readPassword(given: string | undefined): Promise<string> {
  if (given !== undefined) return given;
  if (process.env.SHADOWRELAY_PASSWORD) return process.env.SHADOWRELAY_PASSWORD;
  if (process.stdin.isTTY) process.stderr.write("password: ");
  // One line from stdin (Bun's console is an async iterable of input lines).
  for await (const line of console) return line;
  return "";
}

export async function adminCommand(argv: string[], fail: Fail): Promise<void> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
  }
  const { values, positionals } = parsed;
  const [cmd, arg] = positionals;
  if (values.help || cmd === undefined) {
    console.log(ADMIN_HELP);
    return;
  }
  const relay = (values.relay ?? process.env.SHADOWRELAY_URL ?? "https://127.0.0.1:8443").replace(/\/$/, "");
  let tls: { ca: string } | { rejectUnauthorized: false } | undefined;
  if (values.insecure) {
    process.stderr.write("shadowrelay admin: --insecure: the relay's certificate is NOT checked\n");
    tls = { rejectUnauthorized: false };
  } else {
    const ca = values.ca ?? (existsSync("data/tls/cert.pem") ? "data/tls/cert.pem" : undefined);
    if (ca !== undefined) tls = { ca: readFileSync(ca, "utf8") };
  }

  const call = async (method: string, path: string, body?: unknown, auth = true): Promise<unknown> => {
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (auth) {
      const token = readTokens()[relay];
      if (!token) fail(`not logged in to ${relay}: shadowrelay admin login NAME`);
      headers.authorization = `Bearer ${token}`;
    }
    let res: Response;
    try {
      res = await fetch(`${relay}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(tls ? { tls } : {}),
      });
    } catch (e) {
      fail(`cannot reach ${relay}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = { status: res.status, body: text.slice(0, 200) };
    }
    if (!res.ok) {
      console.log(JSON.stringify(json, null, 2));
      process.exit(1);
    }
    return json;
  };
  const need = (what: string): string => {
    if (arg === undefined) fail(`admin ${cmd} needs ${what}`);
    return arg;
  };
  const out = (v: unknown) => console.log(JSON.stringify(v, null, 2));
  const enc = encodeURIComponent;

  switch (cmd) {
    case "login": {
      const name = need("a user name");
      const r = (await call(
        "POST",
        "/api/login",
        { name, password: await readPassword(values.password) },
        false,
      )) as {
        token: string;
      };
      saveToken(relay, r.token);
      out({ ...(r as object), token: "(saved)" });
      return;
    }
    case "logout":
      out(await call("POST", "/api/logout"));
      saveToken(relay, null);
      return;
    case "me":
      return out(await call("GET", "/api/me"));
    case "users":
      return out(await call("GET", "/api/users"));
    case "useradd":
      return out(
        await call("POST", "/api/users", {
          name: need("a user name"),
          role: values.role ?? "operator",
          password: await readPassword(values.password),
        }),
      );
    case "passwd":
      return out(
        await call("POST", `/api/users/${enc(need("a user name"))}/password`, {
          password: await readPassword(values.password),
        }),
      );
    case "disable":
      return out(await call("POST", `/api/users/${enc(need("a user name"))}/disable`, {}));
    case "devices":
      return out(await call("GET", "/api/devices"));
    case "enroll":
      return out(await call("POST", "/api/enrollments", { name: need("a device name") }));
    case "session":
      return out(
        await call("POST", `/api/devices/${enc(need("a device id"))}/sessions`, {
          mode: "pipe",
          viewOnly: values["view-only"] ?? false,
          audience: values.native ? "native" : "browser",
        }),
      );
    case "ticket":
      return out(
        await call("POST", `/api/sessions/${enc(need("a session id"))}/tickets`, {
          audience: values.native ? "native" : "browser",
        }),
      );
    case "sessions":
      return out(await call("GET", `/api/sessions${values.active ? "?active=true" : ""}`));
    case "end":
      return out(await call("DELETE", `/api/sessions/${enc(need("a session id"))}`));
    case "audit": {
      const q = new URLSearchParams();
      if (values.kind) q.set("kind", values.kind);
      if (values.actor) q.set("actor", values.actor);
      if (values.limit) q.set("limit", values.limit);
      return out(await call("GET", `/api/audit${q.size > 0 ? `?${q}` : ""}`));
    }
    case "verify":
      return out(await call("GET", "/api/audit/verify"));
    default:
      fail(`unknown admin command '${cmd}'\n\n${ADMIN_HELP}`);
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      relay: { type: "string" },
      ca: { type: "string" },
      insecure: { type: "boolean" },
      password: { type: "string" },
      role: { type: "string" },
      "view-only": { type: "boolean" },
      native: { type: "boolean" },
      active: { type: "boolean" },
      kind: { type: "string" },
      actor: { type: "string" },
      limit: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
}
