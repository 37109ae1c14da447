"""Interop peer: drive the Aegis Gate over MCP Streamable HTTP with the official Python SDK client.

The HTTP twin of python_client.py (same modes, same output). Run it with the SDK venv's python, e.g.

    target/peers/venv/bin/python tests/peers/python_http_client.py --mode auto \
        --url http://127.0.0.1:8787/mcp/ws-1 --header 'Authorization:Bearer agk_...' \
        --call everything.echo '{"message": "hi"}'

`--header NAME:VALUE` (repeatable) is sent on every HTTP request. The SDK wiring is
`mcp.Client(streamable_http_client(url, http_client=httpx2.AsyncClient(headers=...)), mode=...)`.

`--mode` and the ONE JSON object it prints on stdout (the report) are described in
peer_common.py, which it shares with python_client.py.

`--idle SECONDS` (repeatable) makes the session send nothing for that long before the second
call, the next one before the third, and so on (the pooled connections sit idle meanwhile, as a
real client's do between a user's requests).
`--keepalive-expiry SECONDS` sets how long the HTTP pool keeps an idle connection (httpx2's
default is 5 s: longer idle gaps then open new connections instead of reusing the idle ones).

`--await-list-change` makes it, after its calls, print the line {"awaiting_list_change": true} on
stdout (flushed) and wait until the tool list changes, then list the tools again; the final object
then has "list_changed": true, "list_changed_via" and "tools_after" (the names listed after the
change). The caller changes the tool list after reading that line. How it hears of the change
depends on the era: at a handshake version (legacy mode, or auto mode falling back), sending
nothing, a `notifications/tools/list_changed` reaching the SDK's message handler through the
session's GET stream ("list_changed_via": "session"); at 2026-07-28 (that mode, or auto mode
adopting it), a ToolsListChanged event of a `subscriptions/listen` stream opened (and acknowledged)
before the line is printed ("list_changed_via": "listen").

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
from mcp.client.subscriptions import ToolsListChanged
from peer_common import MODERN, add_common_arguments, list_all_tools, parse_calls, report, run_and_print


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(p)
    p.add_argument("--url", required=True, help="MCP endpoint, e.g. http://127.0.0.1:PORT/mcp/ws-1")
    p.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="HTTP header (repeatable)")
    p.add_argument("--expect-http-error", type=int, metavar="STATUS", help="raw initialize POST must get STATUS")
    p.add_argument("--idle", type=float, action="append", default=[], metavar="SECONDS", help="idle time before the next call (repeatable)")
    p.add_argument("--keepalive-expiry", type=float, default=5.0, metavar="SECONDS", help="idle pooled connections kept this long")
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


async def run(args: argparse.Namespace, headers: dict[str, str], calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    list_changed = anyio.Event()

    async def on_message(message: Any) -> None:
        inner = getattr(message, "root", message)
        if getattr(inner, "method", None) == "notifications/tools/list_changed":
            list_changed.set()

    # We own the httpx2 client (the transport leaves a caller-supplied one open); it must outlive
    # the Client so the transport's closing DELETE can still use it.
    async with (
        httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(args.timeout),
            limits=httpx2.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=args.keepalive_expiry),
        ) as http,
        Client(
            streamable_http_client(args.url, http_client=http),
            mode=args.mode,
            read_timeout_seconds=args.timeout,
            message_handler=on_message,
        ) as client,
    ):
        out = await report(client, calls, idle=args.idle)
        if args.await_list_change:
            out["list_changed_via"] = await await_list_change(client, list_changed)
            out["list_changed"] = True
            out["tools_after"] = await list_all_tools(client)
        return out


async def await_list_change(client: Client, heard: anyio.Event) -> str:
    """Says it waits, and waits for the tool list to change: by a listen stream at 2026-07-28,
    else by the session's notification (`heard`, set by the message handler); which one."""
    if client.protocol_version != MODERN:
        print(json.dumps({"awaiting_list_change": True}), flush=True)
        await heard.wait()
        return "session"
    async with client.listen(tools_list_changed=True) as subscription:
        print(json.dumps({"awaiting_list_change": True}), flush=True)
        async for event in subscription:
            if isinstance(event, ToolsListChanged):
                return "listen"
    raise RuntimeError("the listen stream ended before a ToolsListChanged event")


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


def main() -> int:
    args = parse_args()
    try:
        headers = parse_headers(args.header)
        calls = parse_calls(args.call)
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

    return run_and_print("python_http_client", args.timeout, lambda: run(args, headers, calls))


if __name__ == "__main__":
    sys.exit(main())
