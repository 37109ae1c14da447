#!/usr/bin/env python3
"""A scripted MCP server for the gate's tests: it writes what the test tells it to, byte for byte.

The gate's sanitizers are tested against what a hostile server can send, and the example server
writes only well-formed JSON through serde_json; this one writes any line a test hands it.

- `initialize` is answered with tools, prompts, resources and logging; its `instructions` are
  the environment variable SCRIPTED_INSTRUCTIONS when that is set.
- `tools/list` lists one tool, `say`; `prompts/list` one prompt, `say`; `resources/list` one
  resource, `scripted://say`; `resources/templates/list` none.
- A `tools/call` of `say` writes each entry of its argument `lines` on stdout: a string is written
  as UTF-8 with `@ID@` replaced by the call's id (its JSON text) and `@TOKEN@` by the call's
  progress token (JSON text, `null` when none), an object `{"hex": "..."}` as those bytes,
  `{"stderr": "..."}` writes that text on stderr, `{"exit": N}` exits with status N.
  Its argument `next` (same form) is kept for the next `prompts/get` or `resources/read`, which
  get those lines with `@ID@` their own id; its argument `then` (same form, `@ID@` the call's
  id) is written when the next response from the client arrives (an answer to a request the
  call's `lines` sent).
- `ping` is answered `{}`, `logging/setLevel` `{}`, any other request -32601; notifications and
  anything unreadable are ignored.
Only the standard library; stdin EOF ends it.
"""

import json
import os
import sys

out = sys.stdout.buffer


def write(entries, rid, token):
    for entry in entries or []:
        if isinstance(entry, dict) and "stderr" in entry:
            sys.stderr.buffer.write((entry["stderr"] + "\n").encode("utf-8"))
            sys.stderr.buffer.flush()
            continue
        if isinstance(entry, dict) and "exit" in entry:
            out.flush()
            sys.exit(entry["exit"])
        if isinstance(entry, dict):
            data = bytes.fromhex(entry["hex"])
        else:
            text = entry.replace("@ID@", rid).replace("@TOKEN@", token)
            data = text.encode("utf-8", "surrogatepass")
        out.write(data + b"\n")
    out.flush()


def answer(rid, key, value):
    out.write(('{"jsonrpc":"2.0","id":%s,"%s":%s}\n' % (rid, key, json.dumps(value))).encode())
    out.flush()


INITIALIZE = {
    "capabilities": {"tools": {}, "prompts": {}, "resources": {}, "logging": {}},
    "serverInfo": {"name": "scripted", "version": "1"},
}
TOOL = {
    "name": "say",
    "description": "Writes the lines it is given.",
    "inputSchema": {
        "type": "object",
        "properties": {
            "lines": {"type": "array"},
            "next": {"type": "array"},
            "then": {"type": "array"},
        },
    },
}
PROMPT = {"name": "say", "description": "Says what the last call of say queued."}
RESOURCE = {"uri": "scripted://say", "name": "say", "mimeType": "text/plain"}


def main():
    queued = []
    later = []
    for raw in sys.stdin.buffer:
        try:
            message = json.loads(raw.decode("utf-8"))
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        method = message.get("method")
        if "id" not in message:
            continue
        rid = json.dumps(message["id"])
        if method is None:
            write(later, rid, "null")
            later = []
            continue
        params = message.get("params") or {}
        if method == "initialize":
            result = dict(INITIALIZE, protocolVersion=params.get("protocolVersion", "2025-06-18"))
            if "SCRIPTED_INSTRUCTIONS" in os.environ:
                result["instructions"] = os.environ["SCRIPTED_INSTRUCTIONS"]
            answer(rid, "result", result)
        elif method == "tools/list":
            answer(rid, "result", {"tools": [TOOL]})
        elif method == "prompts/list":
            answer(rid, "result", {"prompts": [PROMPT]})
        elif method == "resources/list":
            answer(rid, "result", {"resources": [RESOURCE]})
        elif method == "resources/templates/list":
            answer(rid, "result", {"resourceTemplates": []})
        elif method in ("ping", "logging/setLevel"):
            answer(rid, "result", {})
        elif method == "tools/call":
            args = params.get("arguments") or {}
            token = json.dumps((params.get("_meta") or {}).get("progressToken"))
            queued = args.get("next") or []
            later = [
                e.replace("@ID@", rid) if isinstance(e, str) else e for e in args.get("then") or []
            ]
            write(args.get("lines"), rid, token)
        elif method in ("prompts/get", "resources/read") and queued:
            write(queued, rid, "null")
            queued = []
        else:
            answer(rid, "error", {"code": -32601, "message": "method not found"})


main()
