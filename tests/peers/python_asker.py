"""The official Python SDK client, in `--mode legacy` or `2026-07-28`, through a gate that speaks
2026-07-28 to a remote server (`tests/peers/modern_server.py http PORT` as a `url` entry with
`"era": "modern"`): a plain call, and a call whose server asks the client for input (an
`input_required` result of the server, answered by this client's elicitation callback, in
whichever era the client speaks). Prints one JSON report on stdout.

    target/peers/venv/bin/python tests/peers/python_asker.py --mode legacy --tag a \
        --gate target/debug/aegis-gate --config CONFIG.json --data-dir DIR
"""
import argparse
import asyncio
import json
import sys

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import ElicitResult


async def run(args: argparse.Namespace) -> dict:
    async def elicit(_ctx, _params):
        return ElicitResult(action="accept", content={"name": f"octo-{args.tag}"})

    server = StdioServerParameters(
        command=args.gate,
        args=["stdio", "--config", args.config, "--data-dir", args.data_dir],
    )
    async with Client(
        server, mode=args.mode, read_timeout_seconds=args.timeout, elicitation_callback=elicit
    ) as client:
        tools = sorted(t.name for t in (await client.list_tools()).tools)
        added = await client.call_tool("asker.add", {"a": 2, "b": 3})
        asked = await client.call_tool("asker.ask_name", {})
        text = lambda r: "".join(getattr(c, "text", "") for c in r.content)
        return {"tools": tools, "add": text(added), "ask": text(asked)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["legacy", "2026-07-28"], required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--gate", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--timeout", type=float, default=60)
    args = p.parse_args()
    report = asyncio.run(asyncio.wait_for(run(args), args.timeout))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
