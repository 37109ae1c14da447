"""Interop peer: drive an MCP stdio server (the Aegis Gate) with the official Python SDK client.

Used by the peer interop tests to check that a real third-party client can connect to the gate,
list its merged tools and call some of them. Run it with the SDK venv's python, e.g.

    target/peers/venv/bin/python tests/peers/python_client.py --mode auto \
        --command target/debug/aegis-gate --arg stdio --arg=--config --arg gate.json \
        --call everything.echo '{"message": "hi"}'

(Server arguments that start with `-` must be written `--arg=VALUE`, an argparse rule.)

Modes (the SDK's `mcp.Client(..., mode=...)` option):
  auto    the SDK default: probe `server/discover` (2026-07-28), fall back to `initialize`
  legacy  force the `initialize` handshake (handshake-era protocol versions only)

Prints ONE JSON object on stdout:
  {"protocol_version": ..., "handshake": "discover"|"initialize", "server_info": {...} | null,
   "tools": [names...], "calls": {name: {"is_error": bool, "text": concatenated text content}}}
The server's stderr is passed through to ours. Exits non-zero (message on stderr) on any failure,
including the overall `--timeout`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

MAX_PAGES = 1000  # a paginator that never ends must not hang us


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["auto", "legacy"], default="auto")
    p.add_argument("--command", required=True, help="server executable")
    p.add_argument("--arg", action="append", default=[], help="server argument (repeatable; use --arg=-x for dashes)")
    p.add_argument(
        "--call", nargs=2, action="append", default=[], metavar=("NAME", "JSON_ARGS"), help="tool call (repeatable)"
    )
    p.add_argument("--timeout", type=float, default=60.0, help="overall timeout in seconds")
    return p.parse_args()


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


async def run(args: argparse.Namespace, calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    # Pass our whole environment through (PATH for node, AEGIS_LOG for the gate, ...).
    server = StdioServerParameters(command=args.command, args=args.arg, env=dict(os.environ))
    async with Client(server, mode=args.mode, read_timeout_seconds=args.timeout) as client:
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
        return out


def leaves(e: BaseException) -> list[BaseException]:
    """The real errors inside (nested) exception groups from the SDK's task groups."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaves(sub)]
    return [e]


def main() -> int:
    args = parse_args()
    try:
        calls = [(name, json.loads(raw)) for name, raw in args.call]
    except json.JSONDecodeError as e:
        print(f"python_client: bad --call JSON: {e}", file=sys.stderr)
        return 2

    async def bounded() -> dict[str, Any]:
        with anyio.fail_after(args.timeout):
            return await run(args, calls)

    try:
        out = anyio.run(bounded)
    except TimeoutError:
        print(f"python_client: timed out after {args.timeout}s", file=sys.stderr)
        return 1
    except Exception as e:  # any failure is a test failure; name the leaf errors, not the task groups
        for leaf in leaves(e):
            print(f"python_client: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
