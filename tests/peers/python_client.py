"""Interop peer: drive an MCP stdio server (the Aegis Gate) with the official Python SDK client.

Used by the peer interop tests to check that a real third-party client can connect to the gate,
list its merged tools and call some of them. Run it with the SDK venv's python, e.g.

    target/peers/venv/bin/python tests/peers/python_client.py --mode auto \
        --command target/debug/aegis-gate --arg stdio --arg=--config --arg gate.json \
        --call everything.echo '{"message": "hi"}'

(Server arguments that start with `-` must be written `--arg=VALUE`, an argparse rule.)

`--mode` and the ONE JSON object it prints on stdout (the report) are described in
peer_common.py, which it shares with python_http_client.py.
The server's stderr is passed through to ours. Exits non-zero (message on stderr) on any failure,
including the overall `--timeout`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from mcp import Client, StdioServerParameters
from peer_common import add_common_arguments, parse_calls, report, run_and_print


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(p)
    p.add_argument("--command", required=True, help="server executable")
    p.add_argument("--arg", action="append", default=[], help="server argument (repeatable; use --arg=-x for dashes)")
    return p.parse_args()


async def run(args: argparse.Namespace, calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    # Pass our whole environment through (PATH for node, AEGIS_LOG for the gate, ...).
    server = StdioServerParameters(command=args.command, args=args.arg, env=dict(os.environ))
    async with Client(server, mode=args.mode, read_timeout_seconds=args.timeout) as client:
        return await report(client, calls)


def main() -> int:
    args = parse_args()
    try:
        calls = parse_calls(args.call)
    except json.JSONDecodeError as e:
        print(f"python_client: bad --call JSON: {e}", file=sys.stderr)
        return 2
    return run_and_print("python_client", args.timeout, lambda: run(args, calls))


if __name__ == "__main__":
    sys.exit(main())
