#!/usr/bin/env python3
"""Scale benchmark (issue 19): workspace lists with 100 workspaces against 10,000.

For each backend (SQLite; PostgreSQL in its own schema, dropped after) it prepares two
deployments with the same shape and different sizes, 10 workspaces a user:

  small: 10 users, 100 workspaces        large: 1,000 users, 10,000 workspaces

Seeding (honest, and fast enough for 10,000):
  * the owner, every member, the template: through the API (`POST /api/v2/users/first`,
    `POST /api/v2/users`, the template upload and import), as a person would;
  * two real workspaces of the member `alice` through the API, built by the real provisioner:
    one left running, one stopped by a real stop build;
  * every other workspace (alice's other 8, everyone else's 10) cloned with SQL from those two
    exemplars, with the server stopped: every row the service wrote for them, in every table
    (provisioner_jobs and their logs, workspaces, workspace_builds, workspace_agents and their
    logs, apps, agent tokens and connections), copied column for column with fresh UUIDv4 ids
    (what the service generates), the owner and initiator replaced, the workspace renamed and a
    fresh agent token hash. The latest-build copy on the workspace row (migration 0005) comes
    from the same triggers the service's writes go through. Statuses: 2 of each user's 10
    running, 8 stopped. Not cloned: audit rows (they are not read by lists).

Then the server is restarted on the seeded database (idle RSS is read 3 s after that start),
real OAuth access tokens are obtained for alice and the owner through the server's own flow
(bench/setup.py), and each scenario is loaded with wrk on 127.0.0.1, the two deployments
alternating run by run (both servers up, only one loaded at a time):

  healthz            GET /healthz (the floor)
  mcp_member         alice: tools/call coder_list_workspaces {}            (her 10)
  rest_member        alice: GET /api/v2/workspaces                          (her 10)
  rest_owner_filter  owner: GET /api/v2/workspaces?q=status:running owner:alice  (2)
  mcp_owner          owner: tools/call coder_list_workspaces {"owner":"alice"}   (10; the tool
                     has no status argument)

CPU per request = the server's utime+stime (/proc/PID/stat) over the run / requests wrk counted.
Reports medians per deployment and the large/small ratio (target ≤ 1.5).

Usage: bench/scale.py [--backend sqlite|postgres|both] [--runs 3] [--duration 5s]
                      [--connections 16] [--bin PATH] [--out DIR] [--large 10000]
                      [--scenarios healthz,rest_owner_filter,...] [--max-load X]
Python 3.11 standard library; needs wrk, psql (PostgreSQL), curl not needed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import setup as S  # noqa: E402  (bench/setup.py: Http, oauth_token, create_template, wrk parsing)

PER_USER = 10
RUNNING_PER_USER = 2
CLK_TCK = os.sysconf("SC_CLK_TCK")
PG_DEFAULT = "postgres://postgres@127.0.0.1:5432/test"


def log(msg: str) -> None:
    print(f"scale: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# server process


class Server:
    def __init__(self, bin_path: str, work: str, tag: str, backend: str, pg_url: str | None):
        self.bin, self.tag, self.backend = bin_path, tag, backend
        self.data = os.path.join(work, f"data-{tag}")
        os.makedirs(self.data, exist_ok=True)
        self.logf = os.path.join(work, f"server-{tag}.log")
        self.schema = f"coderd_bench_scale_{tag.replace('-', '_')}"
        self.pg_url = pg_url
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def db_args(self) -> list[str]:
        if self.backend != "postgres":
            return []
        sep = "&" if "?" in self.pg_url else "?"
        return ["--postgres-url", f"{self.pg_url}{sep}options=-c%20search_path%3D{self.schema}"]

    def start(self) -> None:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CODER_")}
        env["NO_COLOR"] = "1"
        env["RUST_LOG"] = "warn"
        self.proc = subprocess.Popen(
            [self.bin, "server", "--experiments", "oauth2,mcp-server-http",
             "--http-address", f"127.0.0.1:{port}", "--data-dir", self.data, *self.db_args()],
            stdout=subprocess.DEVNULL, stderr=open(self.logf, "ab"), env=env)
        http = S.Http(self.url)
        for _ in range(600):
            if self.proc.poll() is not None:
                S.die(f"{self.tag}: the server exited during startup (log: {self.logf})")
            try:
                if http.request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        S.die(f"{self.tag}: no /healthz within 60 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def ticks(self) -> int:
        stat = open(f"/proc/{self.proc.pid}/stat").read()
        f = stat.rsplit(") ", 1)[1].split()
        return int(f[11]) + int(f[12])

    def db_ticks(self) -> dict[int, int]:
        """PostgreSQL: utime+stime of each backend process serving this server's pool (matched
        by the pool's client ports), so the database's own CPU counts too."""
        if self.backend != "postgres":
            return {}
        ss = subprocess.run(["ss", "-tnpH", "state", "established", "( dport = :5432 )"],
                            capture_output=True, text=True).stdout
        ports = {line.split()[2].rsplit(":", 1)[1] for line in ss.splitlines()
                 if f"pid={self.proc.pid}," in line}
        out = {}
        for line in psql(self.pg_url, "SELECT pid, client_port FROM pg_stat_activity "
                         "WHERE backend_type = 'client backend'").splitlines():
            pid, port = line.split("|")
            if port in ports:
                try:
                    f = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()
                    out[int(pid)] = int(f[11]) + int(f[12])
                except OSError:
                    pass
        return out

    def status_kib(self, key: str) -> int:
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0


def psql(url: str, sql: str, schema: str | None = None, stdin: str | None = None) -> str:
    env = dict(os.environ)
    if schema:
        env["PGOPTIONS"] = f"-c search_path={schema}"
    r = subprocess.run(["psql", url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       input=stdin, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        S.die(f"psql failed: {r.stderr.strip()[:500]} (sql: {sql[:200]})")
    return r.stdout


# --------------------------------------------------------------------------------------
# seeding through the API


def wait_build(http: S.Http, session: str, ws_id: str, transition: str) -> None:
    deadline = time.time() + 300
    while time.time() < deadline:
        w = http.json("GET", f"/api/v2/workspaces/{ws_id}", token=session)
        b = w["latest_build"]
        if b["transition"] == transition and b["job"]["status"] in ("succeeded", "failed", "canceled"):
            if b["job"]["status"] != "succeeded":
                S.die(f"workspace build {transition} ended {b['job']['status']} (is bubblewrap installed?)")
            return
        time.sleep(0.2)
    S.die(f"workspace {ws_id} {transition} build unfinished after 300 s")


def seed_api(srv: Server, users: int) -> dict:
    http = S.Http(srv.url)
    pw = "Bench-" + secrets.token_urlsafe(18)
    http.json("POST", "/api/v2/users/first",
              {"email": "owner@example.com", "username": "owner", "name": "Owner", "password": pw})
    owner_session = http.json("POST", "/api/v2/users/login",
                              {"email": "owner@example.com", "password": pw})["session_token"]
    template = S.create_template(http, owner_session)
    names = ["alice"] + [f"user{i:04d}" for i in range(1, users)]
    t0 = time.time()

    def create(name: str) -> str:
        u = http.json("POST", "/api/v2/users", {"email": f"{name}@example.com", "username": name,
                                                  "name": name, "password": pw}, owner_session)
        return u["id"]

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        ids = list(ex.map(create, names))
    log(f"{srv.tag}: {users} members created through the API in {time.time() - t0:.1f} s")
    alice_session = http.json("POST", "/api/v2/users/login",
                              {"email": "alice@example.com", "password": pw})["session_token"]
    exemplars = {}
    for kind in ("running", "stopped"):
        w = http.json("POST", "/api/v2/users/me/workspaces",
                      {"name": f"ws-{kind}", "template_id": template["id"],
                       "rich_parameter_values": []}, alice_session)
        wait_build(http, alice_session, w["id"], "start")
        if kind == "stopped":
            http.json("POST", f"/api/v2/workspaces/{w['id']}/builds", {"transition": "stop"},
                      alice_session)
            wait_build(http, alice_session, w["id"], "stop")
        exemplars[kind] = w["id"]
    log(f"{srv.tag}: alice's two exemplar workspaces built by the provisioner (running, stopped)")
    return {"password": pw, "user_ids": ids, "names": names, "exemplars": exemplars}


# --------------------------------------------------------------------------------------
# cloning the exemplars with SQL

# Insertion order follows the foreign keys; jobs come before builds because the build trigger
# copies its job's status onto the workspace.
TABLES = [
    ("provisioner_jobs", "id IN (SELECT job_id FROM workspace_builds WHERE workspace_id = {w})"),
    ("provisioner_job_logs", "job_id IN (SELECT job_id FROM workspace_builds WHERE workspace_id = {w})"),
    ("workspaces", "id = {w}"),
    ("workspace_builds", "workspace_id = {w}"),
    ("workspace_agents", "workspace_id = {w}"),
    ("workspace_agent_logs", "agent_id IN (SELECT id FROM workspace_agents WHERE workspace_id = {w})"),
    ("workspace_apps", "agent_id IN (SELECT id FROM workspace_agents WHERE workspace_id = {w})"),
    ("workspace_agent_tokens", "agent_id IN (SELECT id FROM workspace_agents WHERE workspace_id = {w})"),
    ("workspace_agent_connections", "agent_id IN (SELECT id FROM workspace_agents WHERE workspace_id = {w})"),
]
# Primary keys the service generates (UUIDv4): every clone gets its own.
FRESH_IDS = {"provisioner_jobs": "id", "workspaces": "id", "workspace_builds": "id",
             "workspace_agents": "id", "workspace_apps": "id"}
# Autoincrement keys: left to the database.
SERIAL = {"provisioner_job_logs": "id", "workspace_agent_logs": "id"}


class Dialect:
    """Reads an exemplar's rows and writes clones, as Python values (SQLite) or COPY text (PG)."""

    def __init__(self, srv: Server):
        self.srv = srv
        if srv.backend == "sqlite":
            self.db = sqlite3.connect(os.path.join(srv.data, "coder.db"), isolation_level=None)
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA busy_timeout = 10000")

    def id_value(self, u: uuid.UUID):
        return u.bytes if self.srv.backend == "sqlite" else str(u)

    def token_value(self):
        raw = secrets.token_bytes(32)
        return raw if self.srv.backend == "sqlite" else "\\\\x" + raw.hex()

    def read(self, table: str, where: str, w) -> tuple[list[str], list[list]]:
        if self.srv.backend == "sqlite":
            cur = self.db.execute(f"SELECT * FROM {table} WHERE {where.format(w='?')}",
                                  [w] * where.count("{w}"))
            return [d[0] for d in cur.description], [list(r) for r in cur.fetchall()]
        cols = psql(self.srv.pg_url, f"SELECT string_agg(column_name, ',' ORDER BY ordinal_position) "
                    f"FROM information_schema.columns WHERE table_schema = '{self.srv.schema}' "
                    f"AND table_name = '{table}'").strip().split(",")
        out = psql(self.srv.pg_url, f"COPY (SELECT * FROM {table} WHERE "
                   f"{where.format(w=repr(w))}) TO STDOUT", self.srv.schema)
        return cols, [line.split("\t") for line in out.splitlines() if line]

    def write(self, table: str, cols: list[str], rows: list[list]) -> None:
        if not rows:
            return
        if self.srv.backend == "sqlite":
            ph = ",".join("?" * len(cols))
            self.db.executemany(f"INSERT INTO {table} ({','.join(cols)}) VALUES ({ph})", rows)
            return
        data = "".join("\t".join(r) + "\n" for r in rows)
        psql(self.srv.pg_url, f"COPY {table} ({','.join(cols)}) FROM STDIN", self.srv.schema, data)

    def begin(self):
        if self.srv.backend == "sqlite":
            self.db.execute("BEGIN")

    def commit(self):
        if self.srv.backend == "sqlite":
            # No ANALYZE: the server never runs it, so a real SQLite deployment plans without
            # statistics, as this one will.
            self.db.execute("COMMIT")
            self.db.close()
        else:
            # PostgreSQL's autovacuum would have analyzed tables this size by now.
            psql(self.srv.pg_url, "ANALYZE", self.srv.schema)


def seed_sql(srv: Server, seeded: dict) -> dict[str, int]:
    d = Dialect(srv)
    alice = d.id_value(uuid.UUID(seeded["user_ids"][0]))
    exemplar = {}
    for kind, wid in seeded["exemplars"].items():
        w = d.id_value(uuid.UUID(wid))
        exemplar[kind] = {t: d.read(t, where, w) for t, where in TABLES}
    plan = []  # (user id, name, kind)
    for i, uid in enumerate(seeded["user_ids"]):
        for n in range(PER_USER):
            if i == 0 and n in (0, RUNNING_PER_USER):
                continue  # alice's two real workspaces: one running, one stopped
            kind = "running" if n < RUNNING_PER_USER else "stopped"
            plan.append((d.id_value(uuid.UUID(uid)), f"ws-{n:02d}", kind))
    out: dict[str, list] = {t: [] for t, _ in TABLES}
    cols_of = {t: exemplar["running"][t][0] for t, _ in TABLES}
    t0 = time.time()
    for owner, name, kind in plan:
        idmap = {alice: owner}
        for t, col in FRESH_IDS.items():
            cols, rows = exemplar[kind][t]
            k = cols.index(col)
            for r in rows:
                idmap[r[k]] = d.id_value(uuid.uuid4())
        for t, _ in TABLES:
            cols, rows = exemplar[kind][t]
            for r in rows:
                new = [idmap.get(v, v) for v in r]
                if t == "workspaces":
                    new[cols.index("name")] = name
                if t == "workspace_agent_tokens":
                    new[cols.index("hashed_token")] = d.token_value()
                out[t].append(new)
    d.begin()
    for t, _ in TABLES:
        cols = cols_of[t]
        rows = out[t]
        if t in SERIAL:
            k = cols.index(SERIAL[t])
            cols = cols[:k] + cols[k + 1:]
            rows = [r[:k] + r[k + 1:] for r in rows]
        d.write(t, cols, rows)
    d.commit()
    counts = {"running": 1 + sum(1 for p in plan if p[2] == "running"),
              "stopped": 1 + sum(1 for p in plan if p[2] == "stopped")}
    log(f"{srv.tag}: {len(plan)} workspaces cloned with SQL in {time.time() - t0:.1f} s; {counts}")
    return counts


# --------------------------------------------------------------------------------------
# measuring


def mcp_lua(path: str, token: str, args: dict) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "coder_list_workspaces", "arguments": args}})
    S.cmd_lua(argparse.Namespace(out=path, token=token, body=body))


def rest_lua(path: str, session: str) -> None:
    with open(path, "w") as f:
        f.write(f'wrk.headers["Coder-Session-Token"] = {S.lua_string(session)}\n'
                f'wrk.headers["Accept"] = "application/json"\n')


REST_FILTER = "/api/v2/workspaces?q=status%3Arunning%20owner%3Aalice"


UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def same_as_exemplars(workspaces: list[dict]) -> None:
    """Every cloned workspace of alice reads through the API exactly as the real workspace of
    its status does, once ids and its name are blanked: the clones hold what the service wrote.
    Except the agent's connection: the real running workspace's agent is a live process that
    dials back after the restart, a clone's agent is not (2,000 agent processes would not fit
    on the machine), so connection times, agent status and health are left out."""
    live = {"health", "first_connected_at", "last_connected_at", "disconnected_at"}

    def blank(v, name):
        if isinstance(v, dict):
            agent = "lifecycle_state" in v
            return {k: "<live>" if k in live or (agent and k == "status") else blank(x, name)
                    for k, x in v.items()}
        if isinstance(v, list):
            return [blank(x, name) for x in v]
        if isinstance(v, str) and (UUID_RE.match(v) or v == name):
            return "<blank>"
        return v
    real = {w["latest_build"]["status"]: blank(w, w["name"])
            for w in workspaces if w["name"] in ("ws-running", "ws-stopped")}
    if set(real) != {"running", "stopped"}:
        S.die(f"alice's real workspaces are not one running and one stopped: {sorted(real)}")
    for w in workspaces:
        got, want = blank(w, w["name"]), real[w["latest_build"]["status"]]
        if got != want:
            S.die(f"the clone {w['name']} does not read like the real {w['latest_build']['status']} "
                  f"workspace: {'; '.join(differences(got, want))[:800]}")


def differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b))
                for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {json.dumps(a)[:80]} != {json.dumps(b)[:80]}"]


def prepare_scenarios(srv: Server, seeded: dict, work: str) -> dict:
    http = S.Http(srv.url)
    pw = seeded["password"]
    alice = S.oauth_token(http, "alice@example.com", pw)
    owner = S.oauth_token(http, "owner@example.com", pw)
    base = os.path.join(work, srv.tag)
    mcp_lua(base + "-mcp_member.lua", alice["access_token"], {})
    mcp_lua(base + "-mcp_owner.lua", owner["access_token"], {"owner": "alice"})
    rest_lua(base + "-rest_member.lua", alice["session"])
    rest_lua(base + "-rest_owner_filter.lua", owner["session"])
    scen = {
        "healthz": ("/healthz", None),
        "mcp_member": (S.MCP_PATH, base + "-mcp_member.lua"),
        "rest_member": ("/api/v2/workspaces", base + "-rest_member.lua"),
        "rest_owner_filter": (REST_FILTER, base + "-rest_owner_filter.lua"),
        "mcp_owner": (S.MCP_PATH, base + "-mcp_owner.lua"),
    }
    # One checked request of each: the answers must be what the data set says.
    checks = {}
    st, _, body = http.request("GET", "/api/v2/workspaces", None, {"Coder-Session-Token": alice["session"]})
    listing = json.loads(body) if st == 200 else S.die(f"rest_member {st}")
    checks["rest_member"] = listing["count"]
    same_as_exemplars(listing["workspaces"])
    st, _, body = http.request("GET", REST_FILTER, None, {"Coder-Session-Token": owner["session"]})
    v = json.loads(body) if st == 200 else S.die(f"rest_owner_filter {st}")
    if any(w["latest_build"]["status"] != "running" or w["owner_name"] != "alice" for w in v["workspaces"]):
        S.die("rest_owner_filter returned a workspace that is not alice's and running")
    checks["rest_owner_filter"] = v["count"]
    for key, token, args in (("mcp_member", alice["access_token"], {}),
                             ("mcp_owner", owner["access_token"], {"owner": "alice"})):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": "coder_list_workspaces", "arguments": args}}).encode()
        st, _, data = http.request("POST", S.MCP_PATH, body, {
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-06-18", "Authorization": f"Bearer {token}"})
        msg = json.loads(data) if st == 200 else S.die(f"{key} {st}: {data[:300]!r}")
        if "result" not in msg or msg["result"].get("isError"):
            S.die(f"{key}: {json.dumps(msg)[:300]}")
        checks[key] = msg["result"]["structuredContent"]["count"]
    want = {"rest_member": PER_USER, "mcp_member": PER_USER, "mcp_owner": PER_USER,
            "rest_owner_filter": RUNNING_PER_USER}
    if checks != want:
        S.die(f"{srv.tag}: answers {checks}, expected {want}")
    log(f"{srv.tag}: checked answers {checks}")
    return scen


def run_wrk(srv: Server, path: str, script: str | None, args, out_file: str) -> dict:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}", "--latency"]
    if script:
        cmd += ["-s", script]
    cmd.append(srv.url + path)
    db0 = srv.db_ticks()
    t0 = srv.ticks()
    r = subprocess.run(cmd, capture_output=True, text=True)
    t1 = srv.ticks()
    db1 = srv.db_ticks()
    open(out_file, "w").write(r.stdout + r.stderr)
    row = S.parse_wrk(r.stdout)
    if row["non2xx"] or row["socket_errors"]:
        S.die(f"{out_file}: {row['non2xx']} non-2xx, {row['socket_errors']} socket errors")
    row["cpu_us"] = (t1 - t0) * 1e6 / CLK_TCK / row["requests"]
    if srv.backend == "postgres":
        # Backends the pool opened during the run started at zero.
        db = sum(t - db0.get(pid, 0) for pid, t in db1.items())
        row["db_cpu_us"] = db * 1e6 / CLK_TCK / row["requests"]
        row["total_cpu_us"] = row["cpu_us"] + row["db_cpu_us"]
    return row


def bench_backend(backend: str, args, work: str, results: list) -> dict:
    sets = {"small": args.large // 100 // PER_USER, "large": args.large // PER_USER}  # users per set
    servers = {}
    meta = {}
    try:
        for name, users in sets.items():
            srv = Server(args.bin, work, f"{backend}-{name}", backend, args.postgres_url)
            servers[name] = (srv, {})
            if backend == "postgres":
                psql(args.postgres_url, f"DROP SCHEMA IF EXISTS {srv.schema} CASCADE; CREATE SCHEMA {srv.schema}")
            srv.start()
            seeded = seed_api(srv, users)
            srv.stop()
            statuses = seed_sql(srv, seeded)
            srv.start()
            time.sleep(3)
            idle = srv.status_kib("VmRSS")
            log(f"{srv.tag}: idle RSS after start with {users * PER_USER} workspaces: {idle / 1024:.1f} MiB")
            servers[name] = (srv, prepare_scenarios(srv, seeded, work))
            meta[name] = {"users": users, "workspaces": users * PER_USER, "statuses": statuses,
                          "idle_rss_mib": round(idle / 1024, 1)}
        for run in range(1, args.runs + 1):
            for name in (("small", "large") if run % 2 else ("large", "small")):
                srv, scen = servers[name]
                if args.max_load:
                    while os.getloadavg()[0] >= args.max_load:
                        time.sleep(5)
                load = os.getloadavg()[0]
                for key, (path, script) in scen.items():
                    if args.scenarios and key not in args.scenarios.split(","):
                        continue
                    row = run_wrk(srv, path, script, args,
                                  os.path.join(args.out, f"wrk-{srv.tag}-{key}-{run}.txt"))
                    row.update(backend=backend, set=name, run=run, scenario=key, load1=load)
                    results.append(row)
                    db = f" (+{row['db_cpu_us']:.1f} µs in PostgreSQL)" if "db_cpu_us" in row else ""
                    log(f"{backend} {name:5} run {run} {key:18} {row['rps']:8.0f} req/s "
                        f"{row['cpu_us']:8.1f} µs CPU/req{db}  p50 {S.fmt_ms(row['p50_ms'])}  load {load:.2f}")
                    time.sleep(1)
        for name, (srv, _) in servers.items():
            meta[name]["rss_after_mib"] = round(srv.status_kib("VmRSS") / 1024, 1)
    finally:
        for srv, _ in servers.values():
            srv.stop()
            # Workspaces outlive their server by design: end the sandboxes this data set
            # started (their bubblewrap command lines name its data directory).
            subprocess.run(["pkill", "-KILL", "-f", "--", srv.data + "/"], check=False)
            if backend == "postgres":
                psql(args.postgres_url, f"DROP SCHEMA IF EXISTS {srv.schema} CASCADE")
            shutil.rmtree(srv.data, ignore_errors=True)
    return meta


SCEN_LABELS = {
    "healthz": "GET /healthz (floor)",
    "mcp_member": "member: MCP coder_list_workspaces",
    "rest_member": "member: GET /api/v2/workspaces",
    "rest_owner_filter": "owner: GET /api/v2/workspaces?q=status:running owner:alice",
    "mcp_owner": "owner: MCP coder_list_workspaces {owner: alice}",
}


def report(results: list, metas: dict) -> str:
    lines = []
    for backend, meta in metas.items():
        rows = [r for r in results if r["backend"] == backend]
        lines.append(f"\n### {backend}\n")
        for name, m in meta.items():
            lines.append(f"- {name}: {m['users']} users, {m['workspaces']} workspaces {m['statuses']}; "
                         f"idle RSS after start {m['idle_rss_mib']} MiB, after the runs "
                         f"{m.get('rss_after_mib', '?')} MiB")
        fields = [("cpu_us", "server CPU/req")]
        if backend == "postgres":
            fields.append(("total_cpu_us", "server + PostgreSQL CPU/req"))
        for field, what in fields:
            lines.append(table(rows, field, what))
        idle = meta["large"]["idle_rss_mib"]
        lines.append(f"\nIdle RSS after start with {meta['large']['workspaces']} workspaces: {idle} MiB "
                     f"(target < 40: {'yes' if idle < 40 else '**no**'})")
    return "\n".join(lines)


def table(rows: list, field: str, what: str) -> str:
    lines = ["", f"| scenario | {what}, small set (runs) | {what}, large set (runs) | median ratio | ≤ 1.5 |",
             "|---|---|---|---:|---|"]
    fmt = lambda v: ", ".join(f"{x:.0f}" for x in v)  # noqa: E731
    for key, label in SCEN_LABELS.items():
        per = {name: [r[field] for r in rows if r["scenario"] == key and r["set"] == name]
               for name in ("small", "large")}
        if not per["small"] or not per["large"]:
            continue
        ms, ml = statistics.median(per["small"]), statistics.median(per["large"])
        ratio = ml / ms
        verdict = "(floor)" if key == "healthz" else ("yes" if ratio <= 1.5 else "**no**")
        lines.append(f"| {label} | {ms:.0f} µs ({fmt(per['small'])}) | {ml:.0f} µs ({fmt(per['large'])}) "
                     f"| {ratio:.2f} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    # A TERM (or ^C) unwinds like an error, so the servers and schemas are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="both", choices=["sqlite", "postgres", "both"])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", default="5s")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--large", type=int, default=10000, help="workspaces in the large set (small: 1/100)")
    p.add_argument("--postgres-url", default=os.environ.get("CODER_BENCH_POSTGRES_URL", PG_DEFAULT))
    p.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/coderd-target"),
                                                 "release", "coder"))
    p.add_argument("--scenarios", default="", help="comma-separated subset of: " + ",".join(SCEN_LABELS))
    p.add_argument("--max-load", type=float, default=0.0, help="wait for a 1-minute load below this")
    p.add_argument("--out", default="")
    args = p.parse_args()
    if not os.access(args.bin, os.X_OK):
        S.die(f"no server binary at {args.bin} (cargo build --release, or --bin)")
    if not shutil.which("wrk"):
        S.die("wrk is required (apt-get install -y wrk)")
    work = tempfile.mkdtemp(prefix="coderd-bench-scale.")
    args.out = args.out or os.path.join(work, "out")
    os.makedirs(args.out, exist_ok=True)
    log(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()}; binary {args.bin}")
    results: list = []
    metas = {}
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    try:
        for b in backends:
            metas[b] = bench_backend(b, args, work, results)
    finally:
        with open(os.path.join(args.out, "results.jsonl"), "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")
    text = report(results, metas)
    open(os.path.join(args.out, "report.md"), "w").write(text + "\n")
    print(text)
    print(f"\nraw results: {args.out}")
    if not args.out.startswith(work):
        shutil.rmtree(work, ignore_errors=True)  # the data, logs and token-bearing wrk scripts


if __name__ == "__main__":
    main()
