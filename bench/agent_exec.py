#!/usr/bin/env python3
"""Latency of `coder_workspace_bash` `echo hi` through a workspace agent (issue 13).

Starts release `coder server`s on 127.0.0.1, creates one workspace, and times sequential MCP
`tools/call coder_workspace_bash {"command": "echo hi"}` over one keep-alive connection:

  local    SQLite, one replica: the server holds the agent's connection
  holder   PostgreSQL, two replicas: sent to the replica holding the agent's connection
  relayed  PostgreSQL, two replicas: sent to the other replica, which relays it

Rounds are interleaved (holder, relayed, holder, ...), and each scenario reports the median
over rounds of each round's p50 and p99.

Usage: bench/agent_exec.py [--bin PATH] [--rounds 5] [--calls 200] [--postgres-url URL]
                           [--backend sqlite|postgres|both] [--out FILE.json]
Standard library only; needs psql for the PostgreSQL run. Talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_setup", HERE / "setup.py")
setup = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(setup)  # type: ignore[union-attr]

CALL = json.dumps({
    "jsonrpc": "2.0", "id": 1, "method": "tools/call",
    "params": {"name": "coder_workspace_bash",
               "arguments": {"workspace": "bench", "command": "echo hi"}},
}).encode()


def log(msg: str) -> None:
    print(f"agent_exec: {msg}", file=sys.stderr, flush=True)


class Server:
    def __init__(self, binary: str, data: Path, extra: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(data.parent / f"{data.name}.log", "w")
        self.proc = subprocess.Popen(
            [binary, "server", "--http-address", f"127.0.0.1:{self.port}",
             "--data-dir", str(data), "--experiments", "mcp-server-http", *extra],
            stdout=self.log, stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("CODER_")},
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        setup.die(f"{self.url} did not become healthy; see {self.log.name}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(url: str) -> str:
    """The owner's session token, with a running workspace named `bench`."""
    http = setup.Http(url)
    password = "Bench-agent-exec-1"
    http.json("POST", "/api/v2/users/first",
              {"email": "b@example.com", "username": "bench", "password": password})
    session = http.json("POST", "/api/v2/users/login",
                        {"email": "b@example.com", "password": password})["session_token"]
    template = setup.create_template(http, session)
    http.json("POST", "/api/v2/users/me/workspaces",
              {"name": "bench", "template_id": template["id"]}, session)
    deadline = time.time() + 120
    while time.time() < deadline:
        ws = http.json("GET", "/api/v2/users/me/workspace/bench", token=session)
        if ws["latest_build"]["status"] == "running":
            return session
        if ws["latest_build"]["job"]["status"] in ("failed", "canceled"):
            setup.die(f"the workspace did not start: {ws['latest_build']['job']}")
        time.sleep(0.2)
    setup.die("the workspace did not start within 120 s")
    return ""


def measure(port: int, token: str, calls: int) -> tuple[float, float]:
    """p50 and p99 in milliseconds of `calls` sequential calls on one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-06-18", "Authorization": f"Bearer {token}"}
    times = []
    for i in range(calls + 10):
        start = time.perf_counter()
        conn.request("POST", setup.MCP_PATH, body=CALL, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        elapsed = (time.perf_counter() - start) * 1000
        if resp.status != 200 or b'"isError":false' not in body or b"hi\\n" not in body:
            setup.die(f"unexpected answer {resp.status}: {body[:300]!r}")
        if i >= 10:  # the first calls warm the connection and the agent
            times.append(elapsed)
    conn.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def summarize(rounds: list[tuple[float, float]]) -> dict:
    return {"p50_ms": round(statistics.median(r[0] for r in rounds), 3),
            "p99_ms": round(statistics.median(r[1] for r in rounds), 3),
            "rounds": [[round(a, 3), round(b, 3)] for a, b in rounds]}


def run_sqlite(binary: str, work: Path, args) -> dict:
    server = Server(binary, work / "sqlite", [])
    try:
        token = prepare(server.url)
        rounds = [measure(server.port, token, args.calls) for _ in range(args.rounds)]
        return {"local": summarize(rounds)}
    finally:
        server.stop()
        kill_sandboxes(work / "sqlite")


def psql(url: str, sql: str) -> str:
    return subprocess.run(["psql", url, "-Atqc", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def run_postgres(binary: str, work: Path, args) -> dict:
    schema = "coderd_bench_agent"
    psql(args.postgres_url, f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    sep = "&" if "?" in args.postgres_url else "?"
    url = f"{args.postgres_url}{sep}options=-c%20search_path%3D{schema}"
    a = Server(binary, work / "replica-a", ["--postgres-url", url])
    b = Server(binary, work / "replica-b", ["--postgres-url", url])
    try:
        token = prepare(a.url)
        relay = psql(url, "SELECT r.relay_address FROM workspace_agent_connections c "
                          "JOIN replicas r ON r.id = c.replica_id")
        holder, other = (a, b) if relay == a.url else (b, a)
        if relay not in (a.url, b.url):
            setup.die(f"the agent's connection is held by {relay!r}, neither replica")
        log(f"the agent is connected to {holder.url}; relaying through {other.url}")
        held, relayed = [], []
        for _ in range(args.rounds):
            held.append(measure(holder.port, token, args.calls))
            relayed.append(measure(other.port, token, args.calls))
        return {"holder": summarize(held), "relayed": summarize(relayed)}
    finally:
        for s in (a, b):
            s.stop()
        for d in ("replica-a", "replica-b"):
            kill_sandboxes(work / d)
        psql(args.postgres_url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def kill_sandboxes(data: Path) -> None:
    """Workspaces outlive their server by design; the benchmark's must not."""
    for record in (data / "workspaces").glob("*/sandbox.json"):
        try:
            os.kill(json.loads(record.read_text())["pid"], signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    target = Path(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/coderd-target"))
    p.add_argument("--bin", default=str(target / "release" / "coder"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--postgres-url", default=os.environ.get(
        "CODER_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"))
    p.add_argument("--out")
    args = p.parse_args()
    if not Path(args.bin).exists():
        setup.die(f"{args.bin} does not exist: run `cargo build --release --bin coder` first")
    work = Path(tempfile.mkdtemp(prefix="coderd-bench-agent."))
    results: dict = {"calls": args.calls, "rounds": args.rounds}
    try:
        if args.backend in ("sqlite", "both"):
            results["sqlite"] = run_sqlite(args.bin, work, args)
        if args.backend in ("postgres", "both"):
            results["postgres"] = run_postgres(args.bin, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
