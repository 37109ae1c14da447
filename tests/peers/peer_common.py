"""Shared by the interop peers (python_client.py over stdio, python_http_client.py over HTTP, and
python_surface.py and python_modern.py over either).

What they do the same way: their common arguments (`--mode`, `--call`, `--timeout`), listing
every tool across pages, making the calls, the report object they print, and the way they run
and fail (an overall timeout; the leaf errors of the SDK's task groups named on stderr; exit 1).
The scripts import it as a sibling module: Python puts a script's own directory first on
`sys.path`.

Modes (the SDK's `mcp.Client(..., mode=...)` option):
  auto        the SDK default: probe `server/discover` (2026-07-28), fall back to `initialize`
  legacy      force the `initialize` handshake (handshake-era protocol versions only)
  2026-07-28  pinned to the stateless era: no `initialize` and no `server/discover` (the SDK
              adopts a discover result of its own making), the `_meta` envelope on every request

Prints ONE JSON object on stdout:
  {"protocol_version": ..., "handshake": "discover"|"initialize"|"pinned",
   "server_info": {...} | null,
   "tools": [names...], "calls": {name: {"is_error": bool, "text": concatenated text content}},
   "results": [{"name": name, "is_error": bool, "text": ...}, ...]}
("calls" keeps the last call of each name; "results" has every call, in order.)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp import Client

MAX_PAGES = 1000  # a paginator that never ends must not hang us
MODERN = "2026-07-28"  # the stateless era's version, a `--mode` of its own


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """`--mode`, `--call NAME JSON_ARGS` (repeatable) and `--timeout`."""
    p.add_argument("--mode", choices=["auto", "legacy", MODERN], default="auto")
    p.add_argument(
        "--call", nargs=2, action="append", default=[], metavar=("NAME", "JSON_ARGS"), help="tool call (repeatable)"
    )
    p.add_argument("--timeout", type=float, default=60.0, help="overall timeout in seconds")


def parse_calls(raw: list[list[str]]) -> list[tuple[str, dict[str, Any]]]:
    """The `--call` pairs with their JSON arguments parsed (raises json.JSONDecodeError)."""
    return [(name, json.loads(arguments)) for name, arguments in raw]


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


async def report(
    client: Client, calls: list[tuple[str, dict[str, Any]]], idle: list[float] | None = None
) -> dict[str, Any]:
    """The report both scripts print: handshake, server info, every tool, and each call's result.

    `idle[n]` seconds pass, the session sending nothing, before call n + 2 (none when missing)."""
    gaps = idle or []
    info = client.server_info
    out: dict[str, Any] = {
        "protocol_version": client.protocol_version,
        "handshake": handshake(client),
        "server_info": info.model_dump(mode="json", exclude_none=True) if info else None,
        "tools": await list_all_tools(client),
        "calls": {},
        "results": [],
    }
    for n, (name, arguments) in enumerate(calls):
        if 0 < n <= len(gaps):
            await anyio.sleep(gaps[n - 1])
        result = await client.call_tool(name, arguments)
        text = "".join(block.text for block in result.content if block.type == "text")
        out["calls"][name] = {"is_error": bool(result.is_error), "text": text}
        out["results"].append({"name": name, "is_error": bool(result.is_error), "text": text})
    return out


def handshake(client: Client) -> str:
    """How the era was settled: "initialize" (the legacy handshake), "discover" (auto mode's
    probe answered with a modern version), "pinned" (a version mode: nothing was sent)."""
    if client.session.discover_result is None:
        return "initialize"
    return "discover" if client.mode == "auto" else "pinned"


def leaves(e: BaseException) -> list[BaseException]:
    """The real errors inside (nested) exception groups from the SDK's task groups."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaves(sub)]
    return [e]


def run_and_print(prog: str, timeout: float, run: Callable[[], Awaitable[dict[str, Any]]]) -> int:
    """Runs `run` within `timeout` seconds and prints its report; the process's exit code."""

    async def bounded() -> dict[str, Any]:
        with anyio.fail_after(timeout):
            return await run()

    try:
        out = anyio.run(bounded)
    except TimeoutError:
        print(f"{prog}: timed out after {timeout}s", file=sys.stderr)
        return 1
    except Exception as e:  # any failure is a test failure; name the leaf errors, not the task groups
        for leaf in leaves(e):
            print(f"{prog}: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0
