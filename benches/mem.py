#!/usr/bin/env python3
"""The gate's memory at scale (issue #16): prints one table row per case, RSS of the gate process
(children excluded) from /proc/PID/status, once the work of the case is done.

    python3 benches/mem.py target/release/aegis-gate [CASE ...]

Cases (all by default):
  merge-fresh   stdio, 50 example servers x 107 tools, after the complete merged tools/list
                (every page), fresh pins
  merge-stored  the same again over the data dir of merge-fresh (8.6 MB state.json read)
  stdio-100     stdio, 100 example servers (the full example: tools, prompts, resources), after
                the complete merged tools/list
  serve-100     serve, one workspace of 100 connections registered over the REST API and
                activated, after every connection is healthy and an agent's tools/list
  idle-3        stdio, 3 example servers, after initialize and one tools/list, 2 s idle

Each row gives VmRSS and VmHWM (the peak) in MiB, and the time to the state measured.
MALLOC_ARENA_MAX and friends are passed through from the environment, so a row can be compared
with and without them.
"""
import http.client, json, os, shutil, subprocess, sys, tempfile, time

EXE = os.path.abspath(sys.argv[1])
CASES = sys.argv[2:] or ["merge-fresh", "merge-stored", "stdio-100", "serve-100", "idle-3"]
ADMIN = "bench-admin-token-0123456789abcdef"
# A command the gate runs under (e.g. `heaptrack -o /tmp/gate`); the RSS rows are then the
# wrapper's, only its own output counts.
WRAP = os.environ.get("AEGIS_MEM_WRAP", "").split()


def status(pid):
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        name, _, rest = line.partition(":")
        fields[name] = rest.split()
    return int(fields["VmRSS"][0]) / 1024, int(fields["VmHWM"][0]) / 1024, int(fields["Threads"][0])


class Stdio:
    """`aegis-gate stdio` over a config of `servers` (name -> example-server args)."""

    def __init__(self, scratch, servers, data):
        cfg = {"mcpServers": {n: {"command": EXE, "args": ["example-server", *a]} for n, a in servers.items()},
               "aegis": {"startup_timeout_ms": 30000}}
        path = os.path.join(scratch, "cfg.json")
        open(path, "w").write(json.dumps(cfg))
        self.t0 = time.time()
        self.p = subprocess.Popen([*WRAP, EXE, "stdio", "--config", path, "--data-dir", data],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.next_id = 1

    def request(self, method, params=None):
        self.next_id += 1
        m = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}}
        self.p.stdin.write((json.dumps(m) + "\n").encode()); self.p.stdin.flush()
        while True:
            r = json.loads(self.p.stdout.readline())
            if r.get("id") == self.next_id:
                return r

    def start(self):
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "mem", "version": "1"}})
        self.p.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'); self.p.stdin.flush()

    def list_all(self):
        count, cursor = 0, None
        while True:
            r = self.request("tools/list", {"cursor": cursor} if cursor else {})
            count += len(r["result"]["tools"]); cursor = r["result"].get("nextCursor")
            if not cursor:
                return count

    def stop(self):
        self.p.stdin.close(); self.p.wait(timeout=60)


def stdio_case(scratch, servers, data, idle=0.0):
    g = Stdio(scratch, servers, data)
    g.start()
    tools = g.list_all()
    elapsed = time.time() - g.t0
    time.sleep(idle)
    rss, hwm, threads = status(g.p.pid)
    g.stop()
    return rss, hwm, threads, elapsed, f"{tools} tools"


def call(conn, method, path, token, body=None, headers=None):
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    h.update(headers or {})
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = conn.getresponse()
    return r.status, r.getheaders(), r.read().decode()


def answer(body):
    """The JSON-RPC answer of a body, plain JSON or an event stream (a list_changed notice may
    come first in one)."""
    if not body.startswith("{"):
        datas = [l[5:].strip() for l in body.splitlines() if l.startswith("data:")]
        body = next(d for d in datas if '"id"' in d)
    return json.loads(body)


def serve_case(scratch, n):
    data = os.path.join(scratch, "data")
    env = dict(os.environ, AEGIS_ADMIN_TOKEN=ADMIN, AEGIS_LOG="warn")
    t0 = time.time()
    p = subprocess.Popen([*WRAP, EXE, "serve", "--listen", "127.0.0.1:0", "--allow-command", EXE, "--data-dir", data],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        # A wrapper (heaptrack) may print lines of its own first.
        line = ""
        while not line.startswith("listening on http://"):
            line = p.stdout.readline().decode()
            assert line, "the gate stopped before it listened"
        addr = line.strip().removeprefix("listening on http://")
        host, port = addr.rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=60)
        api = "/api/v1/aegis"
        for i in range(n):
            s, _, b = call(c, "POST", f"{api}/connections", ADMIN,
                           {"workspace_id": "w", "name": f"s{i}", "command": [EXE, "example-server"]})
            assert s == 201, b
        s, _, b = call(c, "POST", f"{api}/workspaces/w/activate", ADMIN, None)
        assert s == 200, b
        while True:
            s, _, b = call(c, "GET", f"{api}/connections?workspace_id=w", ADMIN)
            conns = json.loads(b)
            conns = conns.get("connections", conns) if isinstance(conns, dict) else conns
            if sum(1 for x in conns if x.get("health", x).get("status") == "healthy") == n:
                break
            time.sleep(0.1)
        s, _, b = call(c, "POST", f"{api}/agents", ADMIN, {"workspace_id": "w", "name": "a"})
        key = json.loads(b)["key"]
        mcp = {"Accept": "application/json, text/event-stream"}
        s, h, b = call(c, "POST", "/mcp/w", key, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "mem", "version": "1"}}}, mcp)
        session = dict((k.lower(), v) for k, v in h)["mcp-session-id"]
        mcp["Mcp-Session-Id"] = session
        call(c, "POST", "/mcp/w", key, {"jsonrpc": "2.0", "method": "notifications/initialized"}, mcp)
        tools, cursor = 0, None
        while True:
            s, _, b = call(c, "POST", "/mcp/w", key, {"jsonrpc": "2.0", "id": 2, "method": "tools/list",
                                                      "params": {"cursor": cursor} if cursor else {}}, mcp)
            r = answer(b)["result"]; tools += len(r["tools"]); cursor = r.get("nextCursor")
            if not cursor:
                break
        elapsed = time.time() - t0
        rss, hwm, threads = status(p.pid)
        return rss, hwm, threads, elapsed, f"{tools} tools"
    finally:
        p.terminate(); p.wait(timeout=60)


def main():
    print(f"| case | VmRSS MiB | VmHWM MiB | threads | s to measured | what |")
    print("|---|---|---|---|---|---|")
    root = tempfile.mkdtemp(prefix="aegis-mem-")
    merge_data = os.path.join(root, "merge-data")
    try:
        for case in CASES:
            scratch = tempfile.mkdtemp(dir=root)
            if case == "merge-fresh" or case == "merge-stored":
                if case == "merge-stored" and not os.path.exists(merge_data):
                    stdio_case(scratch, fifty(), merge_data)
                if case == "merge-fresh":
                    shutil.rmtree(merge_data, ignore_errors=True)
                row = stdio_case(scratch, fifty(), merge_data)
            elif case == "stdio-100":
                row = stdio_case(scratch, {f"s{i}": [] for i in range(100)}, os.path.join(scratch, "d"))
            elif case == "serve-100":
                row = serve_case(scratch, 100)
            elif case == "idle-3":
                row = stdio_case(scratch, {f"s{i}": [] for i in range(3)}, os.path.join(scratch, "d"), idle=2.0)
            else:
                sys.exit(f"unknown case {case}")
            rss, hwm, threads, elapsed, what = row
            print(f"| {case} | {rss:.1f} | {hwm:.1f} | {threads} | {elapsed:.2f} | {what} |", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fifty():
    return {f"s{i}": ["--tools-only", "--extra-tools", "100"] for i in range(50)}


main()
