// Interop peer: check the whole MCP surface of server-everything (directly, or through the gate)
// with the official TypeScript SDK client (`@modelcontextprotocol/sdk`, the version server-everything
// depends on: 1.32.2 in target/peers/npm/node_modules).
//
// The same checks as python_surface.py, with the same arguments and the same JSON object printed:
// capabilities, tools, resources, templates, template_read, prompts, completion, logging,
// sampling, elicitation, roots (see python_surface.py for what each asserts and the quirks of
// server-everything they live with). The client declares
// `{sampling: {}, elicitation: {}, roots: {listChanged: true}}` and answers
// `sampling/createMessage`, `elicitation/create` and `roots/list` with handlers that carry `--tag`.
//
// Runs with the system `node` (v20; the SDK wants >= 18). The SDK is imported from
// `$AEGIS_PEERS_DIR/npm/node_modules/@modelcontextprotocol/sdk` (default: target/peers under the
// repository holding this script), or `--sdk DIR`. Command lines, from the repository root:
//
//   Directly against server-everything over stdio (names unprefixed):
//     node tests/peers/ts_surface.mjs --tag a \
//         --command node --arg target/peers/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js \
//         --arg stdio
//
//   Through the gate over stdio (server-everything configured as `everything`):
//     node tests/peers/ts_surface.mjs --tag a --prefix everything. \
//         --command target/debug/aegis-gate --arg stdio --arg=--config --arg gate.json
//
//   Through the gate over Streamable HTTP:
//     node tests/peers/ts_surface.mjs --tag a --prefix everything. \
//         --url http://127.0.0.1:8787/mcp/ws-1 --header 'Authorization:Bearer agk_...'
//
//   Two at once: two of the above concurrently, `--tag a` and `--tag b` (staggered with
//   `--wait-before sampling`, with `--skip roots`: see python_surface.py).
//
// (An argument that starts with `-` must be written `--arg=VALUE`.) Other arguments: `--skip
// CHECK` (repeatable), `--settle SECONDS` (wait after connecting, before the checks; see
// python_surface.py), `--timeout SECONDS` (overall, default 60), `--call NAME JSON_ARGS`
// (repeatable; a tool call made before the checks), `--read URI` (repeatable; a resources/read
// made after the calls, before the checks), `--wait-before STEP` (repeatable; STEP is a check or
// `end`: there, skipped or not, it prints the line {"waiting": "STEP"} on stdout and reads one
// line from stdin before it goes on; stdin closed: it fails). Prints ONE JSON object on stdout
// (after the lines of --wait-before):
// {"protocol_version", "handshake": "initialize", "server_info", "tools", "calls": {name:
//  {"is_error", "text"}}, "results": [{"name", "is_error", "text"}...], "tag", "prefix",
//  "checks": {check: {"ms": duration, ...}}, "skipped", "notifications", "logs", "reads": {uri:
//  text}, "sampling_requests" (the text of every sampling request answered, over the whole run),
//  "elicitation_requests" (the message of each elicitation answered), "roots_requests",
//  "connect_ms", "total_ms"}. Exits 1 with "ts_surface: CHECK: what went wrong" on stderr at the
// first failed check (or "ts_surface: timed out after Ns"), 2 on bad arguments. The server's stderr passes through.

import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const PROG = "ts_surface";
const CHECKS = [
  "capabilities",
  "tools",
  "resources",
  "templates",
  "template_read",
  "prompts",
  "completion",
  "logging",
  "sampling",
  "elicitation",
  "roots",
];
const STEPS = [...CHECKS, "end"]; // where --wait-before may stop
const MAX_PAGES = 1000;
const TEXT_TEMPLATE = "demo://resource/dynamic/text/{resourceId}";
const BLOB_TEMPLATE = "demo://resource/dynamic/blob/{resourceId}";
const LOG_WAIT_MS = 10_000;

class CheckFailed extends Error {
  constructor(check, message) {
    super(`${check}: ${message}`);
  }
}

function usage(message) {
  console.error(`${PROG}: bad argument: ${message}`);
  process.exit(2);
}

// `--call NAME JSON_ARGS` takes two values, which parseArgs cannot say: taken out first.
function takeCalls(argv) {
  const rest = [];
  const calls = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] !== "--call") {
      rest.push(argv[i]);
      continue;
    }
    if (i + 2 >= argv.length) usage("--call needs NAME and JSON_ARGS");
    let parsedArgs;
    try {
      parsedArgs = JSON.parse(argv[i + 2]);
    } catch (e) {
      usage(`--call ${argv[i + 1]}: ${e.message}`);
    }
    calls.push([argv[i + 1], parsedArgs]);
    i += 2;
  }
  return { rest, calls };
}

function parse() {
  const { rest, calls } = takeCalls(process.argv.slice(2));
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: {
        command: { type: "string" },
        arg: { type: "string", multiple: true, default: [] },
        url: { type: "string" },
        header: { type: "string", multiple: true, default: [] },
        prefix: { type: "string", default: "" },
        tag: { type: "string", default: "t" },
        skip: { type: "string", multiple: true, default: [] },
        settle: { type: "string", default: "0" },
        read: { type: "string", multiple: true, default: [] },
        "wait-before": { type: "string", multiple: true, default: [] },
        timeout: { type: "string", default: "60" },
        sdk: { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    usage(e.message);
  }
  if ((parsed.command === undefined) === (parsed.url === undefined)) usage("give --command (stdio) or --url (HTTP), not both");
  if (parsed.header.length && !parsed.url) usage("--header needs --url");
  if (!/^[A-Za-z0-9_-]+$/.test(parsed.tag)) usage(`bad --tag ${JSON.stringify(parsed.tag)}: want [A-Za-z0-9_-]+`);
  for (const s of parsed.skip) if (!CHECKS.includes(s)) usage(`bad --skip ${s}: one of ${CHECKS.join(", ")}`);
  for (const s of parsed["wait-before"]) if (!STEPS.includes(s)) usage(`bad --wait-before ${s}: one of ${STEPS.join(", ")}`);
  const timeout = Number(parsed.timeout);
  if (!(timeout > 0)) usage(`bad --timeout ${parsed.timeout}`);
  const settle = Number(parsed.settle);
  if (!(settle >= 0)) usage(`bad --settle ${parsed.settle}`);
  const headers = {};
  for (const item of parsed.header) {
    const at = item.indexOf(":");
    if (at <= 0 || !item.slice(0, at).trim()) usage(`bad --header ${JSON.stringify(item)}: want NAME:VALUE`);
    headers[item.slice(0, at).trim()] = item.slice(at + 1).trim();
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const peers = process.env.AEGIS_PEERS_DIR || join(here, "..", "..", "target", "peers");
  const sdk = resolve(parsed.sdk ?? join(peers, "npm", "node_modules", "@modelcontextprotocol", "sdk"));
  return { ...parsed, waitBefore: parsed["wait-before"], calls, timeout, settle, headers, sdk };
}

const args = parse();
// The SDK's ESM entry points (what its exports map gives `import`), by path: this script does not
// live under the node_modules that hold it.
const load = (rel) => import(pathToFileURL(join(args.sdk, "dist", "esm", rel)).href);
const [{ Client }, { StdioClientTransport }, { StreamableHTTPClientTransport }, types] = await Promise.all([
  load("client/index.js"),
  load("client/stdio.js"),
  load("client/streamableHttp.js"),
  load("types.js"),
]);

const t0 = performance.now();
const ms = () => Math.round(performance.now() - t0);

const seen = {
  protocolVersion: null,
  notifications: [],
  logs: [],
  logWaiters: [],
  sampling: [],
  elicitation: [],
  roots: [],
};

// Wraps a transport to see what comes in (the negotiated version, notifications in order).
function tap(inner) {
  const outer = {
    start: () => inner.start(),
    send: (message, options) => inner.send(message, options),
    close: () => inner.close(),
    get sessionId() {
      return inner.sessionId;
    },
  };
  if (inner.setProtocolVersion) outer.setProtocolVersion = (v) => inner.setProtocolVersion(v);
  inner.onmessage = (message, extra) => {
    if (message.result?.protocolVersion && seen.protocolVersion === null) seen.protocolVersion = message.result.protocolVersion;
    if (message.method && message.id === undefined) seen.notifications.push(message.method);
    outer.onmessage?.(message, extra);
  };
  inner.onerror = (e) => outer.onerror?.(e);
  inner.onclose = () => outer.onclose?.();
  return outer;
}

const client = new Client(
  { name: "ts_surface", version: "0" },
  { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } },
);

const textOf = (content) =>
  (Array.isArray(content) ? content : [content])
    .filter((c) => c?.type === "text")
    .map((c) => c.text)
    .join(" ");

client.setRequestHandler(types.CreateMessageRequestSchema, async (request) => {
  const asked = request.params.messages.map((m) => textOf(m.content)).join(" ");
  seen.sampling.push(asked);
  return {
    role: "assistant",
    content: { type: "text", text: `aegis sampled reply for ${args.tag} to <${asked}>` },
    model: "aegis-test-model",
    stopReason: "endTurn",
  };
});
client.setRequestHandler(types.ElicitRequestSchema, async (request) => {
  seen.elicitation.push(request.params.message ?? "");
  return { action: "accept", content: { name: `aegis-${args.tag}`, check: true, integer: 7 } };
});
client.setRequestHandler(types.ListRootsRequestSchema, async () => {
  seen.roots.push(ms());
  return { roots: [{ uri: `file:///tmp/aegis-roots-test-${args.tag}`, name: `aegis-roots-${args.tag}` }] };
});
client.setNotificationHandler(types.LoggingMessageNotificationSchema, (n) => {
  const { level, logger, data } = n.params;
  seen.logs.push({ level, logger: logger ?? null, data });
  for (const wake of seen.logWaiters.splice(0)) wake();
});
// Everything else (tools/list_changed, ...) is only counted, by tap().
client.fallbackNotificationHandler = async () => {};

async function allPages(list, key) {
  const items = [];
  let cursor;
  for (let n = 0; n < MAX_PAGES; n++) {
    const page = await list(cursor === undefined ? {} : { cursor });
    items.push(...page[key]);
    cursor = page.nextCursor;
    if (cursor === undefined) return items;
  }
  throw new Error(`${key} did not finish within ${MAX_PAGES} pages`);
}

const toolText = (result) => result.content.filter((c) => c.type === "text").map((c) => c.text).join("");
const P = args.prefix;

const checks = {
  async capabilities() {
    const caps = client.getServerCapabilities() ?? {};
    const missing = ["tools", "prompts", "resources", "completions", "logging"].filter((c) => caps[c] === undefined);
    if (missing.length) throw new CheckFailed("capabilities", `${JSON.stringify(missing)} not declared: ${JSON.stringify(caps)}`);
    if (caps.resources.subscribe !== true) throw new CheckFailed("capabilities", `resources.subscribe not declared: ${JSON.stringify(caps)}`);
    return { declared: caps };
  },

  async tools(tools) {
    const wanted = ["trigger-sampling-request", "trigger-elicitation-request", "get-roots-list"].map((t) => P + t);
    const missing = wanted.filter((t) => !tools.includes(t));
    if (missing.length)
      throw new CheckFailed(
        "tools",
        `${JSON.stringify(missing)} not listed (server-everything lists them only to a client declaring sampling, elicitation and roots): ${JSON.stringify(tools)}`,
      );
    return { count: tools.length };
  },

  async resources() {
    const resources = await allPages((p) => client.listResources(p), "resources");
    if (!resources.length) throw new CheckFailed("resources", "resources/list is empty");
    const uris = resources.map((r) => r.uri);
    const uri = uris.find((u) => u.startsWith("demo://resource/static/document/")) ?? uris[0];
    const read = await client.readResource({ uri });
    const first = read.contents?.[0];
    if (!first) throw new CheckFailed("resources", `resources/read ${uri}: no contents`);
    if (first.uri !== uri) throw new CheckFailed("resources", `resources/read ${uri}: contents for ${first.uri}`);
    if (!first.text && !first.blob) throw new CheckFailed("resources", `resources/read ${uri}: empty contents ${JSON.stringify(first)}`);
    return { uris, names: resources.map((r) => r.name), read: uri, read_chars: (first.text ?? "").length };
  },

  async templates() {
    const templates = await allPages((p) => client.listResourceTemplates(p), "resourceTemplates");
    if (!templates.length) throw new CheckFailed("templates", "resources/templates/list is empty");
    const uris = templates.map((t) => t.uriTemplate);
    for (const expected of [TEXT_TEMPLATE, BLOB_TEMPLATE])
      if (!uris.includes(expected))
        throw new CheckFailed("templates", `${expected} not listed (URIs are kept as the server wrote them): ${JSON.stringify(uris)}`);
    return { uri_templates: uris, names: templates.map((t) => t.name) };
  },

  async template_read() {
    // A URI that no resources/list names: routed by the template it matches.
    const uri = TEXT_TEMPLATE.replace("{resourceId}", "7");
    const read = await client.readResource({ uri });
    const text = read.contents?.[0]?.text ?? "";
    if (!text.startsWith("Resource 7: This is a plaintext resource"))
      throw new CheckFailed("template_read", `resources/read ${uri}: ${JSON.stringify(read)}`);
    return { read: uri };
  },

  async prompts() {
    const prompts = await allPages((p) => client.listPrompts(p), "prompts");
    const names = prompts.map((p) => p.name);
    for (const short of ["simple-prompt", "args-prompt", "completable-prompt"])
      if (!names.includes(P + short)) throw new CheckFailed("prompts", `${P + short} not in prompts/list: ${JSON.stringify(names)}`);
    const simple = await client.getPrompt({ name: P + "simple-prompt" });
    if (simple.messages?.[0]?.content?.text !== "This is a simple prompt without arguments.")
      throw new CheckFailed("prompts", `prompts/get simple-prompt: ${JSON.stringify(simple)}`);
    const city = `Paris-${args.tag}`;
    const got = await client.getPrompt({ name: P + "args-prompt", arguments: { city, state: "TX" } });
    const text = got.messages?.[0]?.content?.text;
    if (text !== `What's weather in ${city}, TX?`) throw new CheckFailed("prompts", `prompts/get args-prompt: ${JSON.stringify(got)}`);
    const argumentsOf = Object.fromEntries(prompts.map((p) => [p.name, (p.arguments ?? []).map((a) => a.name)]));
    return { names, arguments: argumentsOf, args_prompt_text: text };
  },

  async completion() {
    const ref = { type: "ref/prompt", name: P + "completable-prompt" };
    const department = await client.complete({ ref, argument: { name: "department", value: "E" } });
    if (JSON.stringify(department.completion.values) !== JSON.stringify(["Engineering"]))
      throw new CheckFailed("completion", `department 'E': ${JSON.stringify(department.completion)}`);
    // The context's arguments must reach the server: the names depend on the department.
    const member = await client.complete({
      ref,
      argument: { name: "name", value: "" },
      context: { arguments: { department: "Sales" } },
    });
    if (JSON.stringify(member.completion.values) !== JSON.stringify(["David", "Eve", "Frank"]))
      throw new CheckFailed("completion", `name '' with department Sales: ${JSON.stringify(member.completion)}`);
    const rid = await client.complete({
      ref: { type: "ref/resource", uri: TEXT_TEMPLATE },
      argument: { name: "resourceId", value: "42" },
    });
    if (JSON.stringify(rid.completion.values) !== JSON.stringify(["42"]))
      throw new CheckFailed("completion", `${TEXT_TEMPLATE} resourceId '42': ${JSON.stringify(rid.completion)}`);
    return { department: department.completion.values, name_for_sales: member.completion.values, resource_id: rid.completion.values };
  },

  async logging() {
    // The subscribe handler logs at info, naming the URI. At level error that log must not reach
    // us; at level info it must. URIs carry our tag: another session's logs are not ours.
    const quiet = TEXT_TEMPLATE.replace("{resourceId}", `quiet-${args.tag}`);
    const loud = TEXT_TEMPLATE.replace("{resourceId}", `loud-${args.tag}`);
    await client.setLoggingLevel("error");
    await client.subscribeResource({ uri: quiet });
    await client.setLoggingLevel("info");
    await client.subscribeResource({ uri: loud });
    const saw = (uri) => seen.logs.some((log) => String(typeof log.data === "string" ? log.data : JSON.stringify(log.data)).includes(uri));
    const deadline = performance.now() + LOG_WAIT_MS;
    while (!saw(loud) && performance.now() < deadline) {
      await new Promise((wake) => {
        seen.logWaiters.push(wake);
        setTimeout(wake, Math.max(0, deadline - performance.now()));
      });
    }
    if (!saw(loud))
      throw new CheckFailed("logging", `no info log naming ${loud} within ${LOG_WAIT_MS / 1000}s at level info; logs: ${JSON.stringify(seen.logs)}`);
    if (saw(quiet)) throw new CheckFailed("logging", `an info log naming ${quiet} arrived while the level was error: ${JSON.stringify(seen.logs)}`);
    await client.unsubscribeResource({ uri: loud });
    await client.unsubscribeResource({ uri: quiet });
    return { logs: seen.logs.length };
  },

  async sampling() {
    const prompt = `aegis-sampling-${args.tag}`;
    const result = await client.callTool({ name: P + "trigger-sampling-request", arguments: { prompt, maxTokens: 20 } });
    const text = toolText(result);
    if (result.isError) throw new CheckFailed("sampling", `tool error: ${text}`);
    if (!seen.sampling.some((asked) => asked.includes(prompt)))
      throw new CheckFailed("sampling", `our sampling request never reached our handler; it got: ${JSON.stringify(seen.sampling)}`);
    const stray = seen.sampling.filter((asked) => !asked.includes(prompt));
    if (stray.length) throw new CheckFailed("sampling", `sampling requests of another client's calls reached us: ${JSON.stringify(stray)}`);
    if (!text.includes(`aegis sampled reply for ${args.tag} to <`))
      throw new CheckFailed("sampling", `the tool result does not carry our reply: ${text}`);
    return { requests: seen.sampling.length };
  },

  async elicitation() {
    const result = await client.callTool({ name: P + "trigger-elicitation-request", arguments: {} });
    const text = toolText(result);
    if (result.isError) throw new CheckFailed("elicitation", `tool error: ${text}`);
    if (seen.elicitation.length !== 1)
      throw new CheckFailed("elicitation", `${seen.elicitation.length} elicitation requests reached us, want 1`);
    if (!(text + "\n").includes(`- Name: aegis-${args.tag}\n`))
      throw new CheckFailed("elicitation", `the tool result does not carry our answer (name aegis-${args.tag}): ${text}`);
    return { requests: seen.elicitation.length };
  },

  async roots() {
    const result = await client.callTool({ name: P + "get-roots-list", arguments: {} });
    const text = toolText(result);
    if (result.isError) throw new CheckFailed("roots", `tool error: ${text}`);
    const ours = `file:///tmp/aegis-roots-test-${args.tag}`;
    if (!text.includes(ours)) throw new CheckFailed("roots", `the tool result does not list our root ${ours}: ${text}`);
    if (text.split(ours).join("").includes("aegis-roots-test-")) throw new CheckFailed("roots", `another client's root is listed: ${text}`);
    if (!seen.roots.length) throw new CheckFailed("roots", "our root is listed but no roots/list reached us");
    return { requests_at_ms: [...seen.roots] };
  },
};

function transport() {
  if (args.url) {
    return new StreamableHTTPClientTransport(new URL(args.url), { requestInit: { headers: args.headers } });
  }
  // Our whole environment passes through (PATH for node, AEGIS_LOG for the gate, ...).
  return new StdioClientTransport({ command: args.command, args: args.arg, env: { ...process.env }, stderr: "inherit" });
}

let stdinLines;
// At a --wait-before STEP: says so on stdout, then waits for a line on stdin.
async function waitBefore(step) {
  if (!args.waitBefore.includes(step)) return;
  process.stdout.write(JSON.stringify({ waiting: step }) + "\n");
  stdinLines ??= createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const next = await stdinLines.next();
  if (next.done) throw new CheckFailed(step, "stdin closed while waiting before it");
}

async function run() {
  await client.connect(tap(transport()));
  const connectMs = ms();
  await new Promise((r) => setTimeout(r, args.settle * 1000));
  const tools = (await allPages((p) => client.listTools(p), "tools")).map((t) => t.name);
  const out = {
    protocol_version: seen.protocolVersion,
    handshake: "initialize",
    server_info: client.getServerVersion() ?? null,
    tools,
    calls: {},
    results: [],
    tag: args.tag,
    prefix: P,
    checks: {},
  };
  for (const [name, callArgs] of args.calls) {
    const result = await client.callTool({ name, arguments: callArgs });
    const entry = { is_error: Boolean(result.isError), text: toolText(result) };
    out.calls[name] = entry;
    out.results.push({ name, ...entry });
  }
  const reads = {};
  for (const uri of args.read) {
    let read;
    try {
      read = await client.readResource({ uri });
    } catch (e) {
      throw new CheckFailed("read", `resources/read ${uri}: ${e?.constructor?.name ?? "Error"}: ${e?.message ?? e}`);
    }
    reads[uri] = (read.contents ?? []).map((c) => c.text ?? "").join("");
  }
  for (const name of CHECKS) {
    await waitBefore(name);
    if (args.skip.includes(name)) continue;
    const start = performance.now();
    let saw;
    try {
      saw = await checks[name](tools);
    } catch (e) {
      if (e instanceof CheckFailed) throw e;
      throw new CheckFailed(name, `${e?.constructor?.name ?? "Error"}: ${e?.message ?? e}`);
    }
    out.checks[name] = { ms: Math.round(performance.now() - start), ...saw };
  }
  await waitBefore("end");
  Object.assign(out, {
    skipped: CHECKS.filter((c) => args.skip.includes(c)),
    notifications: seen.notifications,
    logs: seen.logs,
    reads,
    sampling_requests: seen.sampling,
    elicitation_requests: seen.elicitation,
    roots_requests: seen.roots,
    connect_ms: connectMs,
    total_ms: ms(),
  });
  return out;
}

// Closes the client (the stdio transport ends stdin, then SIGTERM after 2 s, SIGKILL after 2 more),
// bounded: a close that hangs must not hang us.
async function closeClient() {
  await Promise.race([client.close().catch(() => {}), new Promise((r) => setTimeout(r, 6000).unref())]);
}

let timedOut = false;
const timer = setTimeout(async () => {
  timedOut = true;
  console.error(`${PROG}: timed out after ${args.timeout}s`);
  await closeClient();
  process.exit(1);
}, args.timeout * 1000);

let code = 0;
try {
  const out = await run();
  process.stdout.write(JSON.stringify(out) + "\n");
} catch (e) {
  // After the timeout the closing client fails whatever was in flight: already reported.
  if (timedOut) await new Promise(() => {});
  console.error(`${PROG}: ${e instanceof CheckFailed ? e.message : `${e?.constructor?.name ?? "Error"}: ${e?.message ?? e}`}`);
  code = 1;
}
clearTimeout(timer);
await closeClient();
process.exit(code);
