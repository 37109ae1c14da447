#!/usr/bin/env python3
"""Time from starting `aegis-gate stdio` with N example servers of M extra tools each to the
complete merged tools/list (every page), and the gate's RSS then.

    python3 benches/merge_start.py target/release/aegis-gate 50 100 [DATA_DIR]

Without DATA_DIR each run starts with fresh pins; with one, runs after the first find stored pins.
"""
import json, subprocess, sys, time, os
exe = sys.argv[1]; n = int(sys.argv[2]); tools = int(sys.argv[3])
servers = {f"s{i}": {"command": exe, "args": ["example-server", "--tools-only", "--extra-tools", str(tools)]} for i in range(n)}
cfg = {"mcpServers": servers, "aegis": {"startup_timeout_ms": 30000}}
import tempfile
scratch = tempfile.mkdtemp(prefix="aegis-merge-")
cfg_path = os.path.join(scratch, "cfg.json")
data = sys.argv[4] if len(sys.argv) > 4 else os.path.join(scratch, "data")
open(cfg_path, "w").write(json.dumps(cfg))
t0 = time.time()
p = subprocess.Popen([exe, "stdio", "--config", cfg_path, "--data-dir", data], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
def send(m):
    p.stdin.write((json.dumps(m) + "\n").encode()); p.stdin.flush()
def recv():
    while True:
        line = p.stdout.readline()
        m = json.loads(line)
        if "id" in m: return m
send({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"m","version":"1"}}})
recv(); t_init = time.time() - t0
send({"jsonrpc":"2.0","method":"notifications/initialized"})
count = 0; cursor = None; i = 2
while True:
    params = {"cursor": cursor} if cursor else {}
    send({"jsonrpc":"2.0","id":i,"method":"tools/list","params":params}); i += 1
    r = recv(); count += len(r["result"]["tools"]); cursor = r["result"].get("nextCursor")
    if not cursor: break
t_list = time.time() - t0
rss = int(open(f"/proc/{p.pid}/status").read().split("VmRSS:")[1].split()[0])
print(f"{n}x{tools}: initialize answered {t_init*1000:.0f} ms, full list ({count} tools) {t_list*1000:.0f} ms, gate RSS {rss/1024:.0f} MiB")
p.stdin.close(); p.wait(timeout=30)
import shutil
shutil.rmtree(scratch, ignore_errors=True)
