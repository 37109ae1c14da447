#!/usr/bin/env python3
"""The merge's scaling table (issue #16): a stdio gate with 1, 10 and 50 example servers of 100
extra tools each, from process start to the complete merged tools/list (cold: every server
listed, judged and merged, every page read), then the same walk again (warm: the merged view
cached), each with fresh pins and with the pins the first run stored.

    python3 benches/scale.py target/release/aegis-gate [ROUNDS]

Rounds (default 3) interleave the sizes, so that a noisy moment of the machine spreads over
all rows. Prints one Markdown row per size and pin state: the median and range of each figure,
and the gate's RSS after the warm walk. The direct baseline is the cost of the same list from
one example server of the same size, read straight from it in the same round.
"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time

EXE = os.path.abspath(sys.argv[1])
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
TOOLS = 100
SIZES = [1, 10, 50]
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "scale", "version": "1"}}}


class Peer:
    """A process spoken to in JSON lines on stdin/stdout."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL,
                                  env=dict(os.environ, AEGIS_LOG="warn"))
        self.next_id = 2

    def send(self, message):
        self.p.stdin.write((json.dumps(message) + "\n").encode())
        self.p.stdin.flush()

    def recv(self, want):
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise SystemExit("the process closed its stdout")
            message = json.loads(line)
            if message.get("id") == want:
                return message

    def initialize(self):
        self.send(INIT)
        self.recv(1)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def walk(self):
        """Every page of tools/list; returns how many tools."""
        count, cursor = 0, None
        while True:
            params = {"cursor": cursor} if cursor else {}
            self.send({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/list",
                       "params": params})
            answer = self.recv(self.next_id)
            self.next_id += 1
            count += len(answer["result"]["tools"])
            cursor = answer["result"].get("nextCursor")
            if not cursor:
                return count

    def rss_mib(self):
        status = open(f"/proc/{self.p.pid}/status").read()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def timed(f):
    start = time.perf_counter()
    value = f()
    return value, (time.perf_counter() - start) * 1000


def gate_run(scratch, n, data):
    servers = {f"s{i}": {"command": EXE, "args": ["example-server", "--tools-only",
                                                  "--extra-tools", str(TOOLS)]}
               for i in range(n)}
    config = os.path.join(scratch, f"config-{n}.json")
    with open(config, "w") as f:
        json.dump({"mcpServers": servers, "aegis": {"startup_timeout_ms": 30000}}, f)
    start = time.perf_counter()
    gate = Peer([EXE, "stdio", "--config", config, "--data-dir", data])
    gate.initialize()
    count = gate.walk()
    cold = (time.perf_counter() - start) * 1000
    _, warm = timed(gate.walk)
    rss = gate.rss_mib()
    gate.close()
    return count, cold, warm, rss


def direct_run():
    server = Peer([EXE, "example-server", "--tools-only", "--extra-tools", str(TOOLS)])
    server.initialize()
    _, ms = timed(server.walk)
    server.close()
    return ms


def spread(values, unit):
    return f"{statistics.median(values):.1f} {unit} ({min(values):.1f} – {max(values):.1f})"


def main():
    scratch = tempfile.mkdtemp(prefix="aegis-scale-")
    rows = {}
    direct = []
    try:
        for round_ in range(ROUNDS):
            direct.append(direct_run())
            for n in SIZES:
                data = os.path.join(scratch, f"data-{n}-{round_}")
                for pins in ("fresh", "stored"):
                    count, cold, warm, rss = gate_run(scratch, n, data)
                    row = rows.setdefault((n, pins), {"count": count, "cold": [], "warm": [],
                                                      "rss": []})
                    row["cold"].append(cold)
                    row["warm"].append(warm)
                    row["rss"].append(rss)
        base = statistics.median(direct)
        print(f"direct: one example server's tools/list ({TOOLS}+ tools), read from it: "
              f"{spread(direct, 'ms')}")
        print()
        print("| servers × 100 tools | pins | tools | cold: start → complete list | warm: the list again "
              "| warm, per server's 100 tools, vs direct | RSS after |")
        print("|---|---|---|---|---|---|---|")
        for (n, pins), row in rows.items():
            print(f"| {n} | {pins} | {row['count']} | {spread(row['cold'], 'ms')} | "
                  f"{spread(row['warm'], 'ms')} | {statistics.median(row['warm']) / n / base:.2f}× | "
                  f"{statistics.median(row['rss']):.0f} MiB |")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
