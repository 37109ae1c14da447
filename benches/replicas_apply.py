#!/usr/bin/env python3
"""How fast replicas of serve follow each other's changes through the shared store (issue #18,
aim: within 1 s), and what the store costs a REST change.

    python3 benches/replicas_apply.py target/release/aegis-gate [ROUNDS]

Starts a redis-server of its own (append-only, fsync every second: Redis's default durability),
two replicas A and B over it (`serve --store`), and, as the direct baseline, one serve with its
state in its data dir. Each round (default 30), interleaved:
- an agent created through A's REST API: the 2xx's latency, against the same change on the
  single node; then how long until B takes a session of the new agent (B polled every 2 ms);
- a connection (the built-in example server) added through A: how long until B lists its tools,
  against how long until A itself lists them (the child's start and listing, on both).
Prints a Markdown table: median, 90th percentile and maximum of each figure.
"""
import http.client, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time

EXE = os.path.abspath(sys.argv[1])
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 30
ADMIN = "bench-admin-token"
FERNET = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "apply", "version": "1"}}}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One serve, spoken to over HTTP/1.1 keep-alive."""

    def __init__(self, tmp, name, store=None):
        data = os.path.join(tmp, name)
        argv = [EXE, "serve", "--listen", "127.0.0.1:0", "--data-dir", data,
                "--allow-command", EXE]
        if store:
            argv += ["--store", store]
        env = dict(os.environ, AEGIS_ADMIN_TOKEN=ADMIN, AEGIS_FERNET_KEYS=FERNET,
                   AEGIS_LOG="warn")
        self.log = os.path.join(tmp, name + ".log")
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=open(self.log, "wb"),
                                  env=env)
        line = self.p.stdout.readline().decode()
        self.addr = line.strip().removeprefix("listening on http://")
        host, port = self.addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=20)

    def request(self, method, path, body=None, headers=None):
        all_headers = {"Content-Type": "application/json"}
        all_headers.update(headers or {})
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers=all_headers)
        r = self.conn.getresponse()
        return r.status, r.read(), r

    def admin(self, method, path, body=None):
        status, data, _ = self.request(method, "/api/v1/aegis" + path, body,
                                       {"Authorization": "Bearer " + ADMIN})
        if status >= 300:
            raise SystemExit(f"{method} {path}: {status} {data[:300]}")
        return json.loads(data)

    def session(self, ws, key):
        """A new session's id, or None when the node refuses the agent (not known yet)."""
        status, _, r = self.request("POST", f"/mcp/{ws}", INIT, {
            "Authorization": "Bearer " + key, "Accept": "application/json, text/event-stream"})
        return r.getheader("Mcp-Session-Id") if status == 200 else None

    def tools(self, ws, key, session):
        """Every page of the merged tools/list."""
        names, cursor = [], None
        while True:
            page, cursor = self.page(ws, key, session, cursor)
            names += page
            if not cursor:
                return names

    def page(self, ws, key, session, cursor):
        params = {"cursor": cursor} if cursor else {}
        status, data, _ = self.request(
            "POST", f"/mcp/{ws}",
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": params},
            {"Authorization": "Bearer " + key, "Mcp-Session-Id": session,
             "Accept": "application/json, text/event-stream"})
        if status != 200:
            return [], None
        text = data.decode()
        messages = [text]
        if text.startswith(("data:", "event:", ":")):
            # Answered as an event stream (list changes may come first): the answer is id 2's.
            messages = [l[5:] for l in text.splitlines() if l.startswith("data:")]
        answer = next((m for m in map(json.loads, messages) if m.get("id") == 2), {})
        if "result" not in answer:
            raise SystemExit(f"tools/list: {text[:300]}")
        result = answer["result"]
        return [t["name"] for t in result["tools"]], result.get("nextCursor")

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=30)


def answers(port):
    """Whether something accepts connections on the loopback `port`."""
    try:
        socket.create_connection(("127.0.0.1", port)).close()
        return True
    except OSError:
        return False


def until(check, limit=10.0, every=0.002, what="the change"):
    """Seconds until `check()` is true (polled every 2 ms), failing after `limit`."""
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > limit:
            raise SystemExit(f"waited over 10 s for {what}")
        time.sleep(every)
    return time.perf_counter() - start


def timed(f):
    start = time.perf_counter()
    out = f()
    return time.perf_counter() - start, out


def row(name, values, base=None):
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    cells = f"{statistics.median(ms):.1f} / {p90:.1f} / {ms[-1]:.1f}"
    ratio = ""
    if base:
        ratio = f"{statistics.median(ms) / statistics.median([b * 1000 for b in base]):.2f}×"
    print(f"| {name} | {cells} | {ratio} |")


def main():
    tmp = tempfile.mkdtemp(prefix="aegis-apply-")
    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "yes", "--dir", tmp], stdout=subprocess.DEVNULL)
    until(lambda: answers(port))
    store = f"redis://127.0.0.1:{port}/0"
    a, b, single = Node(tmp, "a", store), Node(tmp, "b", store), Node(tmp, "single")
    try:
        for node in (a, single):
            node.admin("POST", "/workspaces/w/activate")
        key = a.admin("POST", "/agents", {"workspace_id": "w", "name": "watcher"})["key"]
        until(lambda: b.session("w", key) is not None)
        on_a, on_b = a.session("w", key), b.session("w", key)
        figures = {k: [] for k in ("rest_single", "rest_a", "agent_b", "conn_a", "conn_b")}
        for i in range(ROUNDS):
            t, _ = timed(lambda: single.admin(
                "POST", "/agents", {"workspace_id": "w", "name": f"s{i}"}))
            figures["rest_single"].append(t)
            t, made = timed(lambda: a.admin(
                "POST", "/agents", {"workspace_id": "w", "name": f"a{i}"}))
            figures["rest_a"].append(t)
            figures["agent_b"].append(
                until(lambda: b.session("w", made["key"]) is not None, what="the agent on B"))
            name = f"c{i}"
            a.admin("POST", "/connections", {"workspace_id": "w", "name": name,
                                             "command": [EXE, "example-server", "--tools-only"]})
            start = time.perf_counter()
            want = f"{name}.echo"
            until(lambda: want in a.tools("w", key, on_a), what=f"{want} on A")
            figures["conn_a"].append(time.perf_counter() - start)
            until(lambda: want in b.tools("w", key, on_b), what=f"{want} on B")
            figures["conn_b"].append(time.perf_counter() - start)
        print(f"{ROUNDS} rounds; ms: median / p90 / max; ratio of medians\n")
        print("| figure | ms | ratio |\n|---|---|---|")
        row("REST change (create an agent), one node: direct baseline", figures["rest_single"])
        row("the same through replica A (the store's lock, read, fenced write)",
            figures["rest_a"], figures["rest_single"])
        row("A's 2xx → the agent opens a session on B", figures["agent_b"])
        row("connection added through A → A lists its tools (baseline)", figures["conn_a"])
        row("connection added through A → B lists its tools", figures["conn_b"],
            figures["conn_a"])
    finally:
        for node in (a, b, single):
            node.stop()
        redis.terminate()
        redis.wait()
        if os.environ.get("AEGIS_KEEP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
