#!/usr/bin/env bash
# Benchmark of the remote MCP endpoint (issue 5): starts a release `coder server` per backend,
# obtains a real OAuth access token through the server's own flow, creates a template and 100
# workspaces, then loads 127.0.0.1 with wrk (64 connections, 10 s each):
#   GET /healthz (the floor), tools/list, tools/call coder_get_authenticated_user,
#   tools/call coder_list_workspaces
# then tools/list again with many connections at once (1,000 by default, issue 19), both as fast
# as they go and at one fixed offered rate on 64 and on 1,000 connections, and reports req/s,
# p50, p99, socket errors, server CPU time per request, peak RSS, idle RSS and the issues'
# target ratios (to the floor, and the p99 at many connections to the p99 at 64).
#
# Usage: bench/mcp.sh [options]
#   --backend sqlite|postgres|both  (default both; also CODER_BENCH_BACKEND)
#   --runs N                        measure every scenario N times, interleaved (default 1);
#                                   the target ratios use the medians
#   --duration 10s --connections 64 --threads 2 --workspaces 100
#   --connections-high N            the many-connections tools/list run (default 1000; 0 skips
#                                   it); wrk's open file limit is raised to fit
#   --paced-rate R                  the offered rate (req/s, default 2000) of the paced
#                                   tools/list runs on --connections and --connections-high
#   --postgres-url URL              database for the Postgres run (default
#                                   $CODER_BENCH_POSTGRES_URL, else
#                                   postgres://postgres@127.0.0.1:5432/test); the script
#                                   recreates the schema coderd_bench_mcp in it
#   --max-load X                    before each run, wait (up to 30 min) until the 1-minute
#                                   load average is below X (default: don't wait)
#   --out DIR                       keep results.jsonl, meta.jsonl, report.md and logs there
#   --no-build                      use the existing release binary
#   --bin PATH                      benchmark this server binary instead (implies --no-build;
#                                   also CODER_BIN), e.g. to compare two builds
#   CARGO_TARGET_DIR                default /var/tmp/coderd-target
#
# Only 127.0.0.1 is ever loaded. Needs curl, python3, psql (for Postgres); installs wrk with
# apt-get when it is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/coderd-target}"

backend="${CODER_BENCH_BACKEND:-both}"
runs=1
duration=10s
connections=64
connections_high=1000
paced_rate=2000
threads=2
workspaces=100
pg_url="${CODER_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
pg_schema=coderd_bench_mcp
max_load=""
out=""
build=1
bin="${CODER_BIN:-}"
[[ -z "$bin" ]] || build=0

while [[ $# -gt 0 ]]; do
    case "$1" in
        --backend) backend="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        --connections-high) connections_high="$2"; shift 2 ;;
        --paced-rate) paced_rate="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --workspaces) workspaces="$2"; shift 2 ;;
        --postgres-url) pg_url="$2"; shift 2 ;;
        --max-load) max_load="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        --bin) bin="$2"; build=0; shift 2 ;;
        -h | --help) sed -n '2,34p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
case "$backend" in
    sqlite) backends=(sqlite) ;;
    postgres) backends=(postgres) ;;
    both) backends=(sqlite postgres) ;;
    *) echo "--backend must be sqlite, postgres or both" >&2; exit 2 ;;
esac

step() { printf -- '--- %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
py() { python3 "$here/setup.py" "$@"; }

work="$(mktemp -d "${TMPDIR:-/tmp}/coderd-bench-mcp.XXXXXX")"
[[ -n "$out" ]] || out="$work/out"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
results="$out/results.jsonl"
meta="$out/meta.jsonl"
: >"$results"
: >"$meta"

server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
cleanup() {
    local status=$?
    stop_server
    # Workspaces outlive their server by design: end the sandboxes this run started (their
    # bubblewrap command lines name its work directory).
    [[ -z "$work" ]] || pkill -KILL -f -- "$work/" 2>/dev/null || true
    if [[ $status -ne 0 && -n "${log:-}" && -s "${log:-}" ]]; then
        echo "--- server log (last 30 lines)" >&2
        tail -n 30 "$log" >&2 || true
    fi
    rm -rf "$work/data-"*
    [[ "$out" == "$work/out" ]] || rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tools ---------------------------------------------------------------------------------
command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required"
if ! command -v wrk >/dev/null; then
    step "installing wrk"
    if ! apt-get install -y wrk >/dev/null 2>&1; then
        apt-get update >/dev/null
        apt-get install -y wrk >/dev/null
    fi
fi
clk_tck="$(getconf CLK_TCK)"
if ((connections_high > 0)); then
    # wrk holds one socket per connection: its soft open file limit (often 1024) must fit them.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    open_files="$(ulimit -n)"
    [[ "$open_files" == unlimited ]] || ((open_files >= connections_high + 64)) ||
        die "--connections-high $connections_high needs an open file limit above $((connections_high + 64)); the hard limit is $open_files"
fi

bin="${bin:-$CARGO_TARGET_DIR/release/coder}"
if [[ "$build" == 1 ]]; then
    step "cargo build --release --bin coder"
    (cd "$repo" && cargo build --release --bin coder)
fi
[[ -x "$bin" ]] || die "no release binary at $bin (drop --no-build)"

# --- /proc readers -----------------------------------------------------------------------------
cpu_ticks() { # utime + stime of the whole process (all threads), in clock ticks
    local stat
    stat="$(cat "/proc/$server_pid/stat")"
    stat="${stat##*) }" # fields from 3 (state) on; the command name may hold spaces
    read -r -a f <<<"$stat"
    echo $((f[11] + f[12]))
}
status_kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$server_pid/status"; }

wait_quiet() {
    [[ -n "$max_load" ]] || return 0
    local waited=0 load
    while :; do
        load="$(cut -d' ' -f1 /proc/loadavg)"
        if python3 -c "import sys; sys.exit(0 if $load < $max_load else 1)"; then
            break
        fi
        if ((waited >= 1800)); then
            echo "    load average still $load after 30 min; measuring anyway" >&2
            break
        fi
        ((waited % 60 == 0)) && echo "    waiting for a quiet machine (load $load, want < $max_load)"
        sleep 10
        waited=$((waited + 10))
    done
    echo "    load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# --- one backend -----------------------------------------------------------------------------
bodies=(
    ""
    '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"coder_get_authenticated_user","arguments":{}}}'
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"coder_list_workspaces","arguments":{}}}'
)
scenarios=(healthz tools_list get_authenticated_user list_workspaces)

# One curl of each scenario: 200, and a JSON-RPC result that is not an error.
check_all() {
    local url="$1" token="$2" write_lua="${3:-}" i code
    for i in "${!scenarios[@]}"; do
        if [[ $i -eq 0 ]]; then
            code="$(curl -sS -o "$work/body" -w '%{http_code}' "$url/healthz")"
            py check healthz "${scenarios[$i]}" "$code" "$work/body"
            continue
        fi
        code="$(curl -sS -o "$work/body" -w '%{http_code}' -X POST "$url/api/experimental/mcp/http" \
            -H 'Content-Type: application/json' \
            -H 'Accept: application/json, text/event-stream' \
            -H 'MCP-Protocol-Version: 2025-06-18' \
            -H "Authorization: Bearer $token" \
            --data-binary "${bodies[$i]}")"
        py check rpc "${scenarios[$i]}" "$code" "$work/body"
        [[ -z "$write_lua" ]] || py lua "$work/${scenarios[$i]}.lua" "$token" "${bodies[$i]}"
    done
}

# One wrk run of scenario $1 on $2 connections against $3, recorded as run $4 of the backend
# being run ($name, run_backend's); the remaining arguments are wrk's (a script, a timeout).
load() {
    local s="$1" c="$2" target="$3" run="$4" t0 t1
    shift 4
    # Reset VmHWM so the peak is this scenario's own (Linux ≥ 4.0; root or the owner).
    echo 5 >"/proc/$server_pid/clear_refs" 2>/dev/null || true
    t0="$(cpu_ticks)"
    wrk -t"$threads" -c"$c" -d"$duration" --latency "$@" "$target" \
        >"$out/wrk-$name-$s-$run.txt" 2>&1
    t1="$(cpu_ticks)"
    kill -0 "$server_pid" 2>/dev/null || die "the server died during $s"
    py row --results "$results" --backend "$name" --run "$run" --scenario "$s" \
        --wrk-out "$out/wrk-$name-$s-$run.txt" --ticks-before "$t0" --ticks-after "$t1" \
        --clk-tck "$clk_tck" --hwm-kib "$(status_kib VmHWM)" --connections "$c"
    sleep 1
}

run_backend() {
    local name="$1"
    local data="$work/data-$name" port url db_args=()
    mkdir -p "$data"
    # The full log stays in the temp dir: rmcp logs three INFO lines per MCP request, which is
    # gigabytes over a run; $out keeps its tail without them.
    log="$work/server-$name.log"
    if [[ "$name" == postgres ]]; then
        command -v psql >/dev/null || die "psql is required for the Postgres run"
        step "postgres: recreating schema $pg_schema"
        psql "$pg_url" -q -v ON_ERROR_STOP=1 \
            -c "DROP SCHEMA IF EXISTS $pg_schema CASCADE" -c "CREATE SCHEMA $pg_schema" >/dev/null
        local sep='?'
        [[ "$pg_url" == *\?* ]] && sep='&'
        db_args=(--postgres-url "${pg_url}${sep}options=-c%20search_path%3D${pg_schema}")
    fi

    port="$(py freeport)"
    url="http://127.0.0.1:$port"
    step "$name: starting coder server at $url"
    (
        for var in $(compgen -e); do
            [[ "$var" == CODER_* ]] && unset "$var"
        done
        export NO_COLOR=1
        exec "$bin" server --experiments oauth2,mcp-server-http \
            --http-address "127.0.0.1:$port" --data-dir "$data" "${db_args[@]}" \
            >"$work/server-$name.out" 2>"$log"
    ) &
    server_pid=$!
    local up=0
    for _ in $(seq 1 300); do
        if curl -sf -o /dev/null "$url/healthz"; then up=1; break; fi
        kill -0 "$server_pid" 2>/dev/null || die "the server exited during startup"
        sleep 0.1
    done
    ((up)) || die "the server did not answer /healthz within 30 s"
    sleep 3 # let startup settle (migrations, first pool connections, background tasks)
    local idle_rss
    idle_rss="$(status_kib VmRSS)"
    echo "    idle RSS: $((idle_rss / 1024)) MiB ($idle_rss KiB)"

    step "$name: owner, OAuth token, template, $workspaces workspaces"
    py prepare "$url" "$work/prepared-$name.json" --workspaces "$workspaces"
    local token
    token="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["access_token"])' "$work/prepared-$name.json")"

    # Background CPU with the workspaces in place, so it can be told apart from request cost.
    sleep 2
    local t0 t1
    t0="$(cpu_ticks)"
    sleep 5
    t1="$(cpu_ticks)"
    local idle_cpu
    idle_cpu="$(python3 -c "print(round(($t1 - $t0) * 100 / $clk_tck / 5, 2))")"
    echo "    background CPU while idle: $idle_cpu% of a core"
    py meta --results "$meta" --backend "$name" --prepared "$work/prepared-$name.json" \
        --idle-rss-kib "$idle_rss" --idle-cpu-pct "$idle_cpu"

    step "$name: one request of each before the load"
    check_all "$url" "$token" write-lua

    local run
    for run in $(seq 1 "$runs"); do
        step "$name: run $run of $runs (wrk -t$threads -c$connections -d$duration --latency)"
        wait_quiet
        for i in "${!scenarios[@]}"; do
            local s="${scenarios[$i]}" target="$url/api/experimental/mcp/http" script=()
            if [[ $i -eq 0 ]]; then
                target="$url/healthz"
            else
                script=(-s "$work/$s.lua")
            fi
            load "$s" "$connections" "$target" "$run" "${script[@]}"
        done
        if ((connections_high > 0)); then
            # Every connection opens at once and stays open (keep-alive) for the whole run;
            # wrk's 2 s timeout counts a request that waits longer as an error.
            load tools_list_high "$connections_high" "$url/api/experimental/mcp/http" "$run" \
                --timeout 2s -s "$work/tools_list.lua"
            # The same offered rate on few and on many connections: each connection waits a
            # random (exponential) think time between requests, so the arrivals are about
            # Poisson at $paced_rate req/s whatever the connection count. Run as fast as they
            # go, 1,000 connections must wait about 1000/64 times longer than 64 by Little's
            # law (latency = connections ÷ throughput); at one rate, the p99s compare how the
            # server copes with holding many connections (docs/benchmarks.md).
            local c s
            for c in "$connections" "$connections_high"; do
                s=tools_list_paced
                ((c == connections)) || s=tools_list_paced_high
                py paced-lua "$work/tools_list.lua" "$work/$s.lua" --connections "$c" --rate "$paced_rate"
                load "$s" "$c" "$url/api/experimental/mcp/http" "$run" --timeout 2s -s "$work/$s.lua"
            done
        fi
    done
    step "$name: one request of each after the load"
    check_all "$url" "$token"
    stop_server
    grep -v 'rmcp::service' "$log" | tail -n 2000 >"$out/server-$name.log" || true
    rm -f "$log"
    rm -rf "$data"
    if [[ "$name" == postgres ]]; then
        psql "$pg_url" -q -c "DROP SCHEMA IF EXISTS $pg_schema CASCADE" >/dev/null 2>&1 || true
    fi
}

step "machine: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
for b in "${backends[@]}"; do
    run_backend "$b"
done

step "report"
py report "$results" --meta "$meta" | tee "$out/report.md"
echo
echo "raw results: $out"
