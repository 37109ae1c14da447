"""Interop peer: drive the Aegis Gate over MCP Streamable HTTP with the official Python SDK client.

The HTTP twin of python_client.py (same modes, same output). Run it with the SDK venv's python, e.g.

    target/peers/venv/bin/python tests/peers/python_http_client.py --mode auto \
        --url http://127.0.0.1:8787/mcp/ws-1 --header 'Authorization:Bearer agk_...' \
        --call everything.echo '{"message": "hi"}'

`--header NAME:VALUE` (repeatable) is sent on every HTTP request. The SDK wiring is
`mcp.Client(streamable_http_client(url, http_client=httpx2.AsyncClient(headers=...)), mode=...)`.

Modes (the SDK's `mcp.Client(..., mode=...)` option):
  auto    the SDK default: probe `server/discover` (2026-07-28), fall back to `initialize`
  legacy  force the `initialize` handshake (handshake-era protocol versions only)

Prints ONE JSON object on stdout:
  {"protocol_version": ..., "handshake": "discover"|"initialize", "server_info": {...} | null,
   "tools": [names...], "calls": {name: {"is_error": bool, "text": concatenated text content}}}

`--await-list-change` makes it, after its calls, print the line {"awaiting_list_change": true} on
stdout (flushed) and wait, sending nothing, until a `notifications/tools/list_changed` reaches the
SDK's message handler (through the session's GET stream); the final object then has
"list_changed": true. The caller changes the tool list after reading that line.

`--expect-http-error STATUS` instead makes one raw POST (urllib, no SDK, redirects not followed) of
an `initialize` request with `Accept: application/json, text/event-stream`,
`Content-Type: application/json` and the `--header`s (which win on a clash); it prints
{"http_status": N} and exits 0 when N == STATUS, else exits 1.

Exits non-zero (one-line message on stderr) on any failure, including the overall `--timeout`.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

MAX_PAGES = 1000  # a paginator that never ends must not hang us


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["auto", "legacy"], default="auto")
    p.add_argument("--url", required=True, help="MCP endpoint, e.g. http://127.0.0.1:PORT/mcp/ws-1")
    p.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="HTTP header (repeatable)")
    p.add_argument(
        "--call", nargs=2, action="append", default=[], metavar=("NAME", "JSON_ARGS"), help="tool call (repeatable)"
    )
    p.add_argument("--expect-http-error", type=int, metavar="STATUS", help="raw initialize POST must get STATUS")
    p.add_argument("--timeout", type=float, default=60.0, help="overall timeout in seconds")
    p.add_argument("--await-list-change", action="store_true", help="after the calls, wait for tools/list_changed")
    return p.parse_args()


def parse_headers(raw: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"bad --header {item!r}: want NAME:VALUE")
        headers[name.strip()] = value.strip()
    return headers


async def list_all_tools(client: Client) -> list[str]:
    names: list[str] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        names.extend(tool.name for tool in page.tools)
        cursor = page.next_cursor
        if cursor is None:
            return names
    raise RuntimeError(f"tools/list did not finish within {MAX_PAGES} pages")


async def run(args: argparse.Namespace, headers: dict[str, str], calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    list_changed = anyio.Event()

    async def on_message(message: Any) -> None:
        inner = getattr(message, "root", message)
        if getattr(inner, "method", None) == "notifications/tools/list_changed":
            list_changed.set()

    # We own the httpx2 client (the transport leaves a caller-supplied one open); it must outlive
    # the Client so the transport's closing DELETE can still use it.
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(args.timeout)) as http,
        Client(
            streamable_http_client(args.url, http_client=http),
            mode=args.mode,
            read_timeout_seconds=args.timeout,
            message_handler=on_message,
        ) as client,
    ):
        session = client.session
        info = client.server_info
        out: dict[str, Any] = {
            "protocol_version": client.protocol_version,
            "handshake": "discover" if session.discover_result is not None else "initialize",
            "server_info": info.model_dump(mode="json", exclude_none=True) if info else None,
            "tools": await list_all_tools(client),
            "calls": {},
        }
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            text = "".join(block.text for block in result.content if block.type == "text")
            out["calls"][name] = {"is_error": bool(result.is_error), "text": text}
        if args.await_list_change:
            print(json.dumps({"awaiting_list_change": True}), flush=True)
            await list_changed.wait()
            out["list_changed"] = True
        return out


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # report the 3xx itself


def raw_initialize_status(args: argparse.Namespace, headers: dict[str, str]) -> int:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "python_http_client", "version": "0"},
        },
    }
    all_headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", **headers}
    req = urllib.request.Request(args.url, data=json.dumps(body).encode(), headers=all_headers, method="POST")
    try:
        with urllib.request.build_opener(_NoRedirect).open(req, timeout=args.timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def leaves(e: BaseException) -> list[BaseException]:
    """The real errors inside (nested) exception groups from the SDK's task groups."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaves(sub)]
    return [e]


def main() -> int:
    args = parse_args()
    try:
        headers = parse_headers(args.header)
        calls = [(name, json.loads(raw)) for name, raw in args.call]
    except (ValueError, json.JSONDecodeError) as e:  # JSONDecodeError is a ValueError; named for the reader
        print(f"python_http_client: bad argument: {e}", file=sys.stderr)
        return 2

    if args.expect_http_error is not None:
        try:
            status = raw_initialize_status(args, headers)
        except Exception as e:  # connection refused, timeout, ...
            print(f"python_http_client: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        if status != args.expect_http_error:
            print(f"python_http_client: HTTP status {status}, expected {args.expect_http_error}", file=sys.stderr)
            return 1
        print(json.dumps({"http_status": status}))
        return 0

    async def bounded() -> dict[str, Any]:
        with anyio.fail_after(args.timeout):
            return await run(args, headers, calls)

    try:
        out = anyio.run(bounded)
    except TimeoutError:
        print(f"python_http_client: timed out after {args.timeout}s", file=sys.stderr)
        return 1
    except Exception as e:  # any failure is a test failure; name the leaf errors, not the task groups
        for leaf in leaves(e):
            print(f"python_http_client: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
