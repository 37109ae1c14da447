"""Interop peer: the MCP 2026-07-28 (stateless) surface of the Aegis Gate, seen by the official
Python SDK client (`mcp` on PyPI) pinned to that version.

The gate it talks to holds three servers, configured under these names: `everything`
(server-everything, which speaks only the legacy era), `time` (mcp-server-time) and `ex` (the
gate's own `aegis-gate example-server`). The client never sends `initialize`: with
`--mode 2026-07-28` (the default here) it sends no `server/discover` either, every request
carries the 2026-07-28 `_meta` envelope, and server-everything's requests to the client
(sampling, elicitation) can only reach it as `input_required` results, which the SDK answers
through this client's callbacks and retries. (At 2026-07-28 the SDK refuses a JSON-RPC request
from the server with -32601 without calling a callback: mcp/client/session.py `_on_request`
parses it at the negotiated version, which has none. So a callback that ran was reached through
an `input_required` result.)

Command lines (run from the repository root, with the SDK venv's python):

  Through the gate over stdio:
    target/peers/venv/bin/python tests/peers/python_modern.py --tag a \
        --command target/debug/aegis-gate --arg stdio --arg=--config --arg gate.json \
        --arg=--data-dir --arg /tmp/data

  Through the gate over Streamable HTTP:
    target/peers/venv/bin/python tests/peers/python_modern.py --tag a \
        --url http://127.0.0.1:8787/mcp/ws --header 'Authorization:Bearer agk_...'

(Server arguments that start with `-` must be written `--arg=VALUE`, an argparse rule.)

Arguments: `--command`/`--arg` (stdio) or `--url`/`--header NAME:VALUE` (HTTP), `--tag`
([A-Za-z0-9_-]+, default "t": it goes into the prompt arguments, the sampling prompt and the
callbacks' answers, so that what comes back is shown to be this run's), `--mode`/`--timeout`/
`--call` (peer_common.py; `--mode` defaults to 2026-07-28 here; `--call` makes tool calls before
the checks, reported under "calls").

CHECKS, in order:
  version      the negotiated version is 2026-07-28; the serverInfo stamp of a tools/list result
  resources    resources/list (every page), resources/read of server-everything's architecture
               document and of ex's example://readme, resources/templates/list, and a read of a
               URI of server-everything's text template
  prompts      prompts/list, prompts/get of everything.args-prompt with arguments
  completion   completion/complete of everything.completable-prompt's department, and of its
               name with the department as context
  listen       subscriptions/listen with tools_list_changed and example://counter: once it is
               acknowledged, ex.toggle (the tool ex.surprise appears, or disappears when an
               earlier client's toggle added it) and ex.bump (the counter goes up); it waits for
               a ToolsListChanged after which tools/list shows the toggle, and a ResourceUpdated
               of example://counter after which its read shows what ex.bump returned
  sampling     everything.trigger-sampling-request: the sampling callback answers, the tool
               result carries the answer
  elicitation  everything.trigger-elicitation-request: the elicitation callback answers, the
               tool result carries the answer

Prints ONE JSON object on stdout: peer_common's report (protocol_version, handshake, server_info,
tools, calls, results) plus "tag", "checks" ({check: {"ms": duration, ...what it saw}}),
"sampling_requests" (the text of every sampling request the callback answered),
"elicitation_requests" (the message of every elicitation request it answered) and "total_ms".
Exits 1 with "python_modern: CheckFailed: CHECK: what went wrong" on stderr at the first failed
check (or "python_modern: timed out after Ns"), 2 on bad arguments. The server's stderr (the
stdio gate's log) passes through.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx2
import mcp.types as types
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ResourceUpdated, ToolsListChanged
from peer_common import MODERN, add_common_arguments, list_all_tools, parse_calls, report, run_and_print
from python_http_client import parse_headers

PROG = "python_modern"
CHECKS = ["version", "resources", "prompts", "completion", "listen", "sampling", "elicitation"]
MAX_PAGES = 1000
DOCUMENT = "demo://resource/static/document/architecture.md"
README = "example://readme"
COUNTER = "example://counter"
TEXT_TEMPLATE = "demo://resource/dynamic/text/{resourceId}"
SERVER_INFO = "io.modelcontextprotocol/serverInfo"
EVENT_WAIT = 20.0  # seconds the listen stream's events may take after the calls that cause them


class CheckFailed(Exception):
    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(p)
    p.set_defaults(mode=MODERN)
    p.add_argument("--command", help="stdio server executable")
    p.add_argument("--arg", action="append", default=[], help="server argument (repeatable; use --arg=-x for dashes)")
    p.add_argument("--url", help="Streamable HTTP endpoint, e.g. http://127.0.0.1:PORT/mcp/ws")
    p.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="HTTP header (repeatable)")
    p.add_argument("--tag", default="t", help="this run's tag, [A-Za-z0-9_-]+")
    return p.parse_args()


def tool_text(result: types.CallToolResult) -> str:
    return "".join(block.text for block in result.content if block.type == "text")


def read_text(read: types.ReadResourceResult) -> str:
    return "".join(getattr(c, "text", None) or "" for c in read.contents)


async def paged(fetch: Callable[[str | None], Awaitable[Any]], items: Callable[[Any], list[Any]]) -> list[Any]:
    """Every item of a paginated list."""
    out: list[Any] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await fetch(cursor)
        out.extend(items(page))
        cursor = page.next_cursor
        if cursor is None:
            return out
    raise RuntimeError(f"the list did not finish within {MAX_PAGES} pages")


class Modern:
    """One run of the checks over one connected client; what the callbacks saw."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.t0 = time.monotonic()
        self.sampling_requests: list[str] = []
        self.elicitation_requests: list[str] = []
        self.checks: dict[str, dict[str, Any]] = {}

    def ms(self) -> int:
        return round((time.monotonic() - self.t0) * 1000)

    # --- the client's callbacks (reached through input_required results) ---------------------

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

    # --- the checks --------------------------------------------------------------------------

    async def run(self, client: Client) -> None:
        table: dict[str, Callable[[Client], Awaitable[dict[str, Any]]]] = {
            "version": self.check_version,
            "resources": self.check_resources,
            "prompts": self.check_prompts,
            "completion": self.check_completion,
            "listen": self.check_listen,
            "sampling": self.check_sampling,
            "elicitation": self.check_elicitation,
        }
        for name in CHECKS:
            start = time.monotonic()
            try:
                seen = await table[name](client)
            except CheckFailed:
                raise
            except Exception as e:  # an MCP error answer, a validation error, a lost stream, ...
                raise CheckFailed(name, f"{type(e).__name__}: {e}") from e
            self.checks[name] = {"ms": round((time.monotonic() - start) * 1000), **seen}

    async def check_version(self, client: Client) -> dict[str, Any]:
        if client.protocol_version != MODERN:
            raise CheckFailed("version", f"negotiated {client.protocol_version!r}, not {MODERN}")
        # Who answers: the serverInfo stamp of a 2026-07-28 result (the only identity a pinned
        # client sees: it sent no server/discover).
        page = await client.list_tools()
        stamp = (page.meta or {}).get(SERVER_INFO)
        return {"tools_list_server_info": stamp, "result_type": page.result_type}

    async def check_resources(self, client: Client) -> dict[str, Any]:
        resources = await paged(lambda c: client.list_resources(cursor=c), lambda p: p.resources)
        uris = [str(r.uri) for r in resources]
        reads: dict[str, str] = {}
        for uri in (DOCUMENT, README):
            read = await client.read_resource(uri)
            if not read.contents or str(read.contents[0].uri) != uri:
                raise CheckFailed("resources", f"resources/read {uri}: {read}")
            reads[uri] = read_text(read)
        templates = await paged(lambda c: client.list_resource_templates(cursor=c), lambda p: p.resource_templates)
        # A URI no resources/list names: routed by the template it matches.
        templated = TEXT_TEMPLATE.replace("{resourceId}", "7")
        reads[templated] = read_text(await client.read_resource(templated))
        return {"uris": uris, "uri_templates": [t.uri_template for t in templates], "reads": reads}

    async def check_prompts(self, client: Client) -> dict[str, Any]:
        prompts = await paged(lambda c: client.list_prompts(cursor=c), lambda p: p.prompts)
        got = await client.get_prompt("everything.args-prompt", {"city": f"Paris-{self.tag}", "state": "TX"})
        texts = [getattr(m.content, "text", None) for m in got.messages]
        return {"names": [p.name for p in prompts], "args_prompt_texts": texts}

    async def check_completion(self, client: Client) -> dict[str, Any]:
        ref = types.PromptReference(type="ref/prompt", name="everything.completable-prompt")
        department = await client.complete(ref, {"name": "department", "value": "E"})
        # The context's arguments must reach the server: the names depend on the department.
        member = await client.complete(ref, {"name": "name", "value": ""}, {"department": "Sales"})
        return {"department": department.completion.values, "name_for_sales": member.completion.values}

    async def check_listen(self, client: Client) -> dict[str, Any]:
        # ex.toggle adds ex.surprise, or removes it when an earlier client's toggle added it.
        surprise_before = "ex.surprise" in await list_all_tools(client)
        events: list[str] = []
        tools_after: list[str] = []
        counter_after = ""
        async with client.listen(tools_list_changed=True, resource_subscriptions=[COUNTER]) as sub:
            honored = sub.honored.model_dump(by_alias=True, mode="json", exclude_none=True)
            toggled = tool_text(await client.call_tool("ex.toggle", {}))
            bumped = tool_text(await client.call_tool("ex.bump", {}))
            seen_tools = seen_counter = False
            with anyio.move_on_after(EVENT_WAIT):
                async for event in sub:
                    if isinstance(event, ToolsListChanged):
                        events.append("ToolsListChanged")
                        tools_after = await list_all_tools(client)
                        seen_tools = seen_tools or ("ex.surprise" in tools_after) != surprise_before
                    elif isinstance(event, ResourceUpdated):
                        events.append(f"ResourceUpdated {event.uri}")
                        if event.uri == COUNTER:
                            counter_after = read_text(await client.read_resource(COUNTER))
                            seen_counter = seen_counter or counter_after == bumped
                    else:
                        events.append(type(event).__name__)
                    if seen_tools and seen_counter:
                        break
        if not seen_tools:
            raise CheckFailed(
                "listen",
                f"no ToolsListChanged after which tools/list {'lacks' if surprise_before else 'has'} ex.surprise "
                f"within {EVENT_WAIT}s of ex.toggle ({toggled!r}); events: {events}; tools after the last: {tools_after}",
            )
        if not seen_counter:
            raise CheckFailed(
                "listen",
                f"no ResourceUpdated of {COUNTER} after which it reads {bumped!r} (what ex.bump returned) within "
                f"{EVENT_WAIT}s; events: {events}; it read {counter_after!r}",
            )
        return {
            "honored": honored,
            "toggle": toggled,
            "bump": bumped,
            "events": events,
            "surprise_listed_before": surprise_before,
            "surprise_listed_after": "ex.surprise" in tools_after,
            "counter": counter_after,
        }

    async def check_sampling(self, client: Client) -> dict[str, Any]:
        prompt = f"aegis-sampling-{self.tag}"
        result = await client.call_tool("everything.trigger-sampling-request", {"prompt": prompt, "maxTokens": 20})
        return {"is_error": bool(result.is_error), "text": tool_text(result), "requests": len(self.sampling_requests)}

    async def check_elicitation(self, client: Client) -> dict[str, Any]:
        result = await client.call_tool("everything.trigger-elicitation-request", {})
        return {"is_error": bool(result.is_error), "text": tool_text(result), "requests": len(self.elicitation_requests)}


async def run(args: argparse.Namespace, headers: dict[str, str], calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    modern = Modern(args.tag)
    options: dict[str, Any] = {
        "mode": args.mode,
        "read_timeout_seconds": args.timeout,
        "sampling_callback": modern.on_sampling,
        "elicitation_callback": modern.on_elicitation,
        "cache": None,  # every list and read goes to the server
    }
    if args.url:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(args.timeout)) as http,
            Client(streamable_http_client(args.url, http_client=http), **options) as client,
        ):
            return await drive(client, modern, calls)
    # Pass our whole environment through (PATH for node, AEGIS_LOG for the gate, ...).
    server = StdioServerParameters(command=args.command, args=args.arg, env=dict(os.environ))
    async with Client(server, **options) as client:
        return await drive(client, modern, calls)


async def drive(client: Client, modern: Modern, calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    out = await report(client, calls)
    await modern.run(client)
    out.update(
        tag=modern.tag,
        checks=modern.checks,
        sampling_requests=modern.sampling_requests,
        elicitation_requests=modern.elicitation_requests,
        total_ms=modern.ms(),
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
