"""Interop peer: check the whole MCP surface of server-everything (directly, or through the gate)
with the official Python SDK client (`mcp` on PyPI).

Beyond tools: resources (list, read, templates, read of a template URI, subscribe, unsubscribe),
prompts (list, get with arguments), completion (of a prompt argument, with context, and of a
resource template variable), logging (setLevel per session; `notifications/message` delivered at
the level set, not below), and the server->client requests a tool call makes (sampling,
elicitation, roots) answered by this client's callbacks. That is the surface of 2025-11-25: the
mode defaults to legacy here (in auto mode the SDK adopts 2026-07-28 from the gate's
`server/discover`, an era without logging/setLevel, resources/subscribe or server->client
requests; python_modern.py checks that one).

Command lines (run from the repository root, with the SDK venv's python):

  Directly against server-everything over stdio (names unprefixed):
    target/peers/venv/bin/python tests/peers/python_surface.py --tag a \
        --command node --arg target/peers/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js \
        --arg stdio

  Through the gate over stdio (server-everything configured as `everything`):
    target/peers/venv/bin/python tests/peers/python_surface.py --tag a --prefix everything. \
        --command target/debug/aegis-gate --arg stdio --arg=--config --arg gate.json

  Through the gate over Streamable HTTP:
    target/peers/venv/bin/python tests/peers/python_surface.py --tag a --prefix everything. \
        --url http://127.0.0.1:8787/mcp/ws-1 --header 'Authorization:Bearer agk_...'

  Two at once (each must get ITS tag back from sampling, elicitation and roots): run two of the
  above concurrently with `--tag a` and `--tag b`. The gate sends a server's request to the only
  session with a call in flight at that server and refuses it while calls of several sessions are
  (it never guesses): stagger the two with `--wait-before sampling` (see below), and pass
  `--skip roots` (server-everything caches the first roots answer it gets per connection).

(Server arguments that start with `-` must be written `--arg=VALUE`, an argparse rule.)

Arguments: `--command`/`--arg` (stdio) or `--url`/`--header NAME:VALUE` (HTTP), `--prefix` (what
the server's names carry: "" directly, "everything." through the gate; resource URIs are never
prefixed), `--tag` ([A-Za-z0-9_-]+, default "t"), `--settle SECONDS` (wait after connecting: with
0.5, server-everything's own roots/list, 350 ms after `initialized`, comes before get-roots-list
instead of inside it), `--skip CHECK` (repeatable; a check left out, e.g. while the gate cannot do
it yet), `--mode` (default legacy)/`--timeout` (peer_common.py; `--call` too: extra tool calls made before the
checks, reported under "calls"), `--read URI` (repeatable; a resources/read made after the calls
and before the checks, its text reported under "reads": another server's resource through the gate).

`--wait-before STEP` (repeatable; STEP is a check or `end`, the point after the last check, before
the client closes): there, skipped or not, the script prints the line {"waiting": "STEP"} on
stdout (flushed) and reads one line from stdin before it goes on (stdin closed: it fails). Whoever
runs two clients at once uses it to make their server requests take turns, without sleeping.

CHECKS, in order: capabilities (tools, prompts, resources with subscribe, completions, logging
declared), tools, resources, templates, template_read, prompts, completion, logging, sampling,
elicitation, roots.

Prints ONE JSON object on stdout: peer_common's report (protocol_version, handshake, server_info,
tools, calls, results) plus "tag", "prefix", "checks" ({check: {"ms": duration, ...what it saw}}),
"skipped", "notifications" (methods received, in order), "logs" (the `notifications/message`
params received: level, logger, data), "reads" ({uri: text} of `--read`), "sampling_requests" (the
text of every sampling/createMessage this client's callback answered, over the whole run),
"elicitation_requests" (the message of every elicitation/create it answered), "roots_requests"
(when this client answered each roots/list), "connect_ms" (when the handshake was done) and
"total_ms"; times in ms since the client began to connect. The lines of `--wait-before` come
before it, each a JSON object of its own. Exits 1 with "python_surface: CheckFailed: CHECK: what went wrong" on
stderr at the first failed check (or "python_surface: timed out after Ns"), 2 on bad arguments.
The server's stderr passes through.

Quirks of server-everything (2026.8.31) these checks live with:
  * Its sampling, elicitation and roots tools exist only when the client declares those
    capabilities: registered when `notifications/initialized` arrives, each registration followed
    by its own `notifications/tools/list_changed` (several right after the handshake, not debounced).
  * 350 ms after `initialized` it sends `roots/list` on its own (inside no call) and caches the
    answer for the life of the connection (per MCP session id; a stdio connection has none, so one
    cache for everyone on it). `get-roots-list` shows the cache and asks (`roots/list`, not tied to
    the call's request id) only when nothing is cached: an EMPTY answer to the early request is
    cached (the tool then says "no roots are currently configured" until the client sends
    `notifications/roots/list_changed`); an ERROR answer is not (the tool asks again, in the call).
    The checks run within ~150 ms of the handshake, so directly the tool's own request is the one
    answered; `--settle 0.5` makes it the early one.
  * `resources/subscribe` and `unsubscribe` log an `info` `notifications/message` naming the URI,
    sent before the response and related to no request; it accepts any URI.
  * On stdio a server->client request carries nothing that links it to the call it serves.
  * It exits on stdin EOF only when no timer of its runs (the toggle-simulated-logging and
    toggle-subscriber-updates intervals keep it alive: then only a signal ends it); these checks
    start none.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx2
import mcp.types as types
from mcp import Client, MCPDeprecationWarning, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from peer_common import add_common_arguments, parse_calls, report, run_and_print
from python_http_client import parse_headers

PROG = "python_surface"
# logging/setLevel, resources/subscribe and roots are deprecated from 2026-07-28 on, and still the
# protocol of 2025-11-25 (what server-everything and the gate speak): no warning for using them.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)
CHECKS = [
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
]
STEPS = [*CHECKS, "end"]  # where --wait-before may stop
MAX_PAGES = 1000
TEXT_TEMPLATE = "demo://resource/dynamic/text/{resourceId}"
BLOB_TEMPLATE = "demo://resource/dynamic/blob/{resourceId}"
LOG_WAIT = 10.0  # seconds the info-level log of our subscribe may take to arrive


class CheckFailed(Exception):
    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(p)
    p.set_defaults(mode="legacy")
    p.add_argument("--command", help="stdio server executable")
    p.add_argument("--arg", action="append", default=[], help="server argument (repeatable; use --arg=-x for dashes)")
    p.add_argument("--url", help="Streamable HTTP endpoint, e.g. http://127.0.0.1:PORT/mcp/ws-1")
    p.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="HTTP header (repeatable)")
    p.add_argument("--prefix", default="", help='prefix of tool and prompt names ("everything." through the gate)')
    p.add_argument("--tag", default="t", help="this instance's tag, [A-Za-z0-9_-]+")
    p.add_argument("--settle", type=float, default=0.0, metavar="SECONDS", help="wait this long after connecting, before the checks")
    p.add_argument("--skip", action="append", default=[], choices=CHECKS, help="leave a check out (repeatable)")
    p.add_argument("--read", action="append", default=[], metavar="URI", help="resources/read before the checks (repeatable)")
    p.add_argument(
        "--wait-before",
        action="append",
        default=[],
        choices=STEPS,
        metavar="STEP",
        help='print {"waiting": STEP} and read a line from stdin before STEP (a check, or end; repeatable)',
    )
    return p.parse_args()


class Surface:
    """One run of the checks over one connected client; what the callbacks saw."""

    def __init__(self, prefix: str, tag: str) -> None:
        self.prefix = prefix
        self.tag = tag
        self.t0 = time.monotonic()
        self.notifications: list[str] = []
        self.logs: list[dict[str, Any]] = []
        self.log_arrived = anyio.Event()
        self.sampling_requests: list[str] = []
        self.elicitation_requests: list[str] = []
        self.roots_requests: list[int] = []
        self.checks: dict[str, dict[str, Any]] = {}

    def ms(self) -> int:
        return round((time.monotonic() - self.t0) * 1000)

    # --- the client's callbacks -------------------------------------------------------------

    async def on_message(self, message: Any) -> None:
        method = getattr(getattr(message, "root", message), "method", None)
        self.notifications.append(method if method else type(message).__name__)

    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append({"level": params.level, "logger": params.logger, "data": params.data})
        self.log_arrived.set()

    async def on_sampling(self, _ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked = " ".join(m.content.text for m in params.messages if getattr(m.content, "type", None) == "text")
        self.sampling_requests.append(asked)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"aegis sampled reply for {self.tag} to <{asked}>"),
            model="aegis-test-model",
            stop_reason="endTurn",
        )

    async def on_elicitation(self, _ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.elicitation_requests.append(getattr(params, "message", ""))
        return types.ElicitResult(action="accept", content={"name": f"aegis-{self.tag}", "check": True, "integer": 7})

    async def on_roots(self, _ctx: Any) -> types.ListRootsResult:
        self.roots_requests.append(self.ms())
        return types.ListRootsResult(
            roots=[types.Root(uri=f"file:///tmp/aegis-roots-test-{self.tag}", name=f"aegis-roots-{self.tag}")]
        )

    # --- the checks --------------------------------------------------------------------------

    async def run(
        self, client: Client, skip: list[str], tools: list[str], pause: Callable[[str], Awaitable[None]]
    ) -> None:
        table: dict[str, Callable[[Client, list[str]], Awaitable[dict[str, Any]]]] = {
            "capabilities": self.check_capabilities,
            "tools": self.check_tools,
            "resources": self.check_resources,
            "templates": self.check_templates,
            "template_read": self.check_template_read,
            "prompts": self.check_prompts,
            "completion": self.check_completion,
            "logging": self.check_logging,
            "sampling": self.check_sampling,
            "elicitation": self.check_elicitation,
            "roots": self.check_roots,
        }
        for name in CHECKS:
            await pause(name)
            if name in skip:
                continue
            start = time.monotonic()
            try:
                seen = await table[name](client, tools)
            except CheckFailed:
                raise
            except Exception as e:  # an MCP error answer, a validation error, ...
                raise CheckFailed(name, f"{type(e).__name__}: {e}") from e
            self.checks[name] = {"ms": round((time.monotonic() - start) * 1000), **seen}

    async def check_capabilities(self, client: Client, _tools: list[str]) -> dict[str, Any]:
        # What a client reads to decide which methods it may call.
        caps = client.server_capabilities.model_dump(by_alias=True, mode="json", exclude_none=True)
        missing = [c for c in ("tools", "prompts", "resources", "completions", "logging") if c not in caps]
        if missing:
            raise CheckFailed("capabilities", f"{missing} not declared: {caps}")
        if caps["resources"].get("subscribe") is not True:
            raise CheckFailed("capabilities", f"resources.subscribe not declared: {caps}")
        return {"declared": caps}

    async def check_tools(self, _client: Client, tools: list[str]) -> dict[str, Any]:
        wanted = [self.prefix + t for t in ("trigger-sampling-request", "trigger-elicitation-request", "get-roots-list")]
        missing = [t for t in wanted if t not in tools]
        if missing:
            raise CheckFailed(
                "tools",
                f"{missing} not listed (server-everything lists them only to a client declaring sampling, "
                f"elicitation and roots): {tools}",
            )
        return {"count": len(tools)}

    async def check_resources(self, client: Client, _tools: list[str]) -> dict[str, Any]:
        resources: list[types.Resource] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await client.list_resources(cursor=cursor)
            resources.extend(page.resources)
            cursor = page.next_cursor
            if cursor is None:
                break
        if not resources:
            raise CheckFailed("resources", "resources/list is empty")
        uris = [str(r.uri) for r in resources]
        # A static document (its text is the file's), else the first listed.
        uri = next((u for u in uris if u.startswith("demo://resource/static/document/")), uris[0])
        read = await client.read_resource(uri)
        if not read.contents:
            raise CheckFailed("resources", f"resources/read {uri}: no contents")
        first = read.contents[0]
        text = getattr(first, "text", None)
        if str(first.uri) != uri:
            raise CheckFailed("resources", f"resources/read {uri}: contents for {first.uri}")
        if not text and not getattr(first, "blob", None):
            raise CheckFailed("resources", f"resources/read {uri}: empty contents {first}")
        return {"uris": uris, "names": [r.name for r in resources], "read": uri, "read_chars": len(text or "")}

    async def check_templates(self, client: Client, _tools: list[str]) -> dict[str, Any]:
        templates: list[types.ResourceTemplate] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await client.list_resource_templates(cursor=cursor)
            templates.extend(page.resource_templates)
            cursor = page.next_cursor
            if cursor is None:
                break
        if not templates:
            raise CheckFailed("templates", "resources/templates/list is empty")
        uris = [t.uri_template for t in templates]
        for expected in (TEXT_TEMPLATE, BLOB_TEMPLATE):
            if expected not in uris:
                raise CheckFailed("templates", f"{expected} not listed (URIs are kept as the server wrote them): {uris}")
        return {"uri_templates": uris, "names": [t.name for t in templates]}

    async def check_template_read(self, client: Client, _tools: list[str]) -> dict[str, Any]:
        # A URI that no resources/list names: routed by the template it matches.
        uri = TEXT_TEMPLATE.replace("{resourceId}", "7")
        read = await client.read_resource(uri)
        text = getattr(read.contents[0], "text", "") if read.contents else ""
        if not text.startswith("Resource 7: This is a plaintext resource"):
            raise CheckFailed("template_read", f"resources/read {uri}: {read}")
        return {"read": uri}

    async def check_prompts(self, client: Client, _tools: list[str]) -> dict[str, Any]:
        prompts: list[types.Prompt] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await client.list_prompts(cursor=cursor)
            prompts.extend(page.prompts)
            cursor = page.next_cursor
            if cursor is None:
                break
        names = [p.name for p in prompts]
        for short in ("simple-prompt", "args-prompt", "completable-prompt"):
            if self.prefix + short not in names:
                raise CheckFailed("prompts", f"{self.prefix + short} not in prompts/list: {names}")
        simple = await client.get_prompt(self.prefix + "simple-prompt")
        if simple.messages[0].content.text != "This is a simple prompt without arguments.":
            raise CheckFailed("prompts", f"prompts/get simple-prompt: {simple}")
        city = f"Paris-{self.tag}"
        got = await client.get_prompt(self.prefix + "args-prompt", {"city": city, "state": "TX"})
        text = got.messages[0].content.text if got.messages else None
        if text != f"What's weather in {city}, TX?":
            raise CheckFailed("prompts", f"prompts/get args-prompt: {got}")
        args = {p.name: [a.name for a in (p.arguments or [])] for p in prompts}
        return {"names": names, "arguments": args, "args_prompt_text": text}

    async def check_completion(self, client: Client, _tools: list[str]) -> dict[str, Any]:
        ref = types.PromptReference(type="ref/prompt", name=self.prefix + "completable-prompt")
        department = await client.complete(ref, {"name": "department", "value": "E"})
        if department.completion.values != ["Engineering"]:
            raise CheckFailed("completion", f"department 'E': {department.completion}")
        # The context's arguments must reach the server: the names depend on the department.
        member = await client.complete(ref, {"name": "name", "value": ""}, {"department": "Sales"})
        if member.completion.values != ["David", "Eve", "Frank"]:
            raise CheckFailed("completion", f"name '' with department Sales: {member.completion}")
        template = types.ResourceTemplateReference(type="ref/resource", uri=TEXT_TEMPLATE)
        rid = await client.complete(template, {"name": "resourceId", "value": "42"})
        if rid.completion.values != ["42"]:
            raise CheckFailed("completion", f"{TEXT_TEMPLATE} resourceId '42': {rid.completion}")
        return {
            "department": department.completion.values,
            "name_for_sales": member.completion.values,
            "resource_id": rid.completion.values,
        }

    async def check_logging(self, client: Client, _tools: list[str]) -> dict[str, Any]:
        # The subscribe handler logs at info, naming the URI. At level error that log must not reach
        # us; at level info it must. URIs carry our tag: another session's logs are not ours.
        quiet = TEXT_TEMPLATE.replace("{resourceId}", f"quiet-{self.tag}")
        loud = TEXT_TEMPLATE.replace("{resourceId}", f"loud-{self.tag}")
        await client.set_logging_level("error")
        await client.subscribe_resource(quiet)
        await client.set_logging_level("info")
        await client.subscribe_resource(loud)

        def saw(uri: str) -> bool:
            return any(uri in str(log["data"]) for log in self.logs)

        with anyio.move_on_after(LOG_WAIT):
            while not saw(loud):
                self.log_arrived = anyio.Event()
                if saw(loud):
                    break
                await self.log_arrived.wait()
        if not saw(loud):
            raise CheckFailed("logging", f"no info log naming {loud} within {LOG_WAIT}s at level info; logs: {self.logs}")
        if saw(quiet):
            raise CheckFailed("logging", f"an info log naming {quiet} arrived while the level was error: {self.logs}")
        await client.unsubscribe_resource(loud)
        await client.unsubscribe_resource(quiet)
        return {"logs": len(self.logs)}

    async def check_sampling(self, client: Client, _tools: list[str]) -> dict[str, Any]:
        prompt = f"aegis-sampling-{self.tag}"
        result = await client.call_tool(self.prefix + "trigger-sampling-request", {"prompt": prompt, "maxTokens": 20})
        text = tool_text(result)
        if result.is_error:
            raise CheckFailed("sampling", f"tool error: {text}")
        if not any(prompt in asked for asked in self.sampling_requests):
            raise CheckFailed("sampling", f"our sampling request never reached our callback; it got: {self.sampling_requests}")
        if stray := [asked for asked in self.sampling_requests if prompt not in asked]:
            raise CheckFailed("sampling", f"sampling requests of another client's calls reached us: {stray}")
        if f"aegis sampled reply for {self.tag} to <" not in text:
            raise CheckFailed("sampling", f"the tool result does not carry our reply: {text}")
        return {"requests": len(self.sampling_requests)}

    async def check_elicitation(self, client: Client, _tools: list[str]) -> dict[str, Any]:
        result = await client.call_tool(self.prefix + "trigger-elicitation-request", {})
        text = tool_text(result)
        if result.is_error:
            raise CheckFailed("elicitation", f"tool error: {text}")
        if len(self.elicitation_requests) != 1:
            raise CheckFailed("elicitation", f"{len(self.elicitation_requests)} elicitation requests reached us, want 1")
        if f"- Name: aegis-{self.tag}\n" not in text + "\n":
            raise CheckFailed("elicitation", f"the tool result does not carry our answer (name aegis-{self.tag}): {text}")
        return {"requests": len(self.elicitation_requests)}

    async def check_roots(self, client: Client, _tools: list[str]) -> dict[str, Any]:
        result = await client.call_tool(self.prefix + "get-roots-list", {})
        text = tool_text(result)
        if result.is_error:
            raise CheckFailed("roots", f"tool error: {text}")
        ours = f"file:///tmp/aegis-roots-test-{self.tag}"
        if ours not in text:
            raise CheckFailed("roots", f"the tool result does not list our root {ours}: {text}")
        if "aegis-roots-test-" in text.replace(ours, ""):
            raise CheckFailed("roots", f"another client's root is listed: {text}")
        if not self.roots_requests:
            raise CheckFailed("roots", "our root is listed but no roots/list reached us")
        return {"requests_at_ms": self.roots_requests}


def tool_text(result: types.CallToolResult) -> str:
    return "".join(block.text for block in result.content if block.type == "text")


async def run(args: argparse.Namespace, headers: dict[str, str], calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    surface = Surface(args.prefix, args.tag)
    options: dict[str, Any] = {
        "mode": args.mode,
        "read_timeout_seconds": args.timeout,
        "message_handler": surface.on_message,
        "logging_callback": surface.on_log,
        "sampling_callback": surface.on_sampling,
        "elicitation_callback": surface.on_elicitation,
        "list_roots_callback": surface.on_roots,
        "cache": None,  # every list and read goes to the server
    }
    if args.url:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(args.timeout)) as http,
            Client(streamable_http_client(args.url, http_client=http), **options) as client,
        ):
            return await drive(client, surface, args, calls)
    # Pass our whole environment through (PATH for node, AEGIS_LOG for the gate, ...).
    server = StdioServerParameters(command=args.command, args=args.arg, env=dict(os.environ))
    async with Client(server, **options) as client:
        return await drive(client, surface, args, calls)


async def wait_before(steps: list[str], step: str) -> None:
    """At a `--wait-before` STEP: says so on stdout, then waits for a line on stdin."""
    if step not in steps:
        return
    print(json.dumps({"waiting": step}), flush=True)
    line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    if not line:
        raise CheckFailed(step, "stdin closed while waiting before it")


async def read_texts(client: Client, uris: list[str]) -> dict[str, str]:
    """The `--read` URIs' texts (of every text content), each read once."""
    reads: dict[str, str] = {}
    for uri in uris:
        try:
            read = await client.read_resource(uri)
        except Exception as e:  # an MCP error answer, ...
            raise CheckFailed("read", f"resources/read {uri}: {type(e).__name__}: {e}") from e
        reads[uri] = "".join(getattr(c, "text", None) or "" for c in read.contents)
    return reads


async def drive(client: Client, surface: Surface, args: argparse.Namespace, calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    connect_ms = surface.ms()
    await anyio.sleep(args.settle)
    out = await report(client, calls)
    reads = await read_texts(client, args.read)
    await surface.run(client, args.skip, out["tools"], lambda step: wait_before(args.wait_before, step))
    await wait_before(args.wait_before, "end")
    out.update(
        tag=surface.tag,
        prefix=surface.prefix,
        checks=surface.checks,
        skipped=[c for c in CHECKS if c in args.skip],
        notifications=surface.notifications,
        logs=surface.logs,
        reads=reads,
        sampling_requests=surface.sampling_requests,
        elicitation_requests=surface.elicitation_requests,
        roots_requests=surface.roots_requests,
        connect_ms=connect_ms,
        total_ms=surface.ms(),
    )
    return out


def main() -> int:
    args = parse_args()
    try:
        if (args.command is None) == (args.url is None):
            raise ValueError("give --command (stdio) or --url (HTTP), not both")
        if args.header and not args.url:
            raise ValueError("--header needs --url")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", args.tag):
            raise ValueError(f"bad --tag {args.tag!r}: want [A-Za-z0-9_-]+")
        headers = parse_headers(args.header)
        calls = parse_calls(args.call)
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        print(f"{PROG}: bad argument: {e}", file=sys.stderr)
        return 2
    return run_and_print(PROG, args.timeout, lambda: run(args, headers, calls))


if __name__ == "__main__":
    sys.exit(main())
