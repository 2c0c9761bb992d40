#!/usr/bin/env bash
# Interoperability check: the official MCP Python SDK (PyPI `mcp`, pinned in
# requirements.txt) connects to a freshly started coder server through the server's own
# OAuth flow (discovery from the 401, dynamic registration, PKCE, consent, token, refresh,
# revocation) and calls tools. See client.py for the checks.
#
# Usage: interop/python/run.sh [--build]
#   --build                 run `cargo build --bin coder` first (also CODER_INTEROP_BUILD=1);
#                           without it the debug binary is built only when missing
#   CODER_INTEROP_VENV      virtualenv to create or reuse (default /var/tmp/coderd-interop-venv)
#   CODER_INTEROP_VERBOSE=1 print every HTTP exchange
#   CODER_BIN               server binary (default $CARGO_TARGET_DIR/debug/coder)
#   PYTHON                  interpreter for the virtualenv (default python3)
#
# The last line of output is `N passed, M failed`; the exit status is non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/coderd-target}"
venv="${CODER_INTEROP_VENV:-/var/tmp/coderd-interop-venv}"
bin="${CODER_BIN:-$CARGO_TARGET_DIR/debug/coder}"
python="${PYTHON:-python3}"
build="${CODER_INTEROP_BUILD:-0}"

for arg in "$@"; do
    case "$arg" in
        --build) build=1 ;;
        -h | --help)
            sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "unknown argument: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

step() { printf -- '--- %s\n' "$*"; }

# Whatever happens, the last line printed is the summary the CI runner reads: client.py's,
# or `0 passed, 1 failed` when the run broke before or around it.
work="$(mktemp -d "${TMPDIR:-/tmp}/coderd-interop.XXXXXX")"
server_pid=""
summary=""
die() {
    printf 'interop: %s\n' "$*" >&2
    exit 1
}
cleanup() {
    local status=$?
    # Finish even when stdout is gone (a reader such as `head` quit) or a command fails.
    set +e
    trap '' PIPE
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    # Workspaces outlive their server by design: end the sandbox this check started (its
    # bubblewrap command line names the work directory).
    [[ -z "$work" ]] || pkill -KILL -f -- "$work/" 2>/dev/null || true
    if [[ $status -ne 0 ]]; then
        if [[ -s "$work/server.log" ]]; then
            echo "--- server log (last 40 lines)" >&2
            tail -n 40 "$work/server.log" >&2 || true
        fi
        # A run that failed never reports `0 failed`, even when every check passed before the
        # server died.
        if [[ "$summary" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
            ((BASH_REMATCH[2] > 0)) || summary="${BASH_REMATCH[1]} passed, 1 failed"
        else
            summary="0 passed, 1 failed"
        fi
        echo "$summary"
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

# --- virtualenv, reused while requirements.txt and the interpreter are unchanged ---------
stamp_value="$("$python" -c 'import sys; print(sys.version)' | tr -d '\n') $(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
stamp="$venv/.coderd-interop-stamp"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$stamp_value" ]]; then
    step "virtualenv $venv (reused)"
else
    step "virtualenv $venv (creating)"
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "cannot create a virtualenv with '$python -m venv' (install python3-venv)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
        || die "pip install -r requirements.txt failed"
    printf '%s' "$stamp_value" >"$stamp"
fi
"$venv/bin/python" -m pip --disable-pip-version-check show mcp 2>/dev/null | sed -n 's/^Version: /mcp /p'

# --- server binary -------------------------------------------------------------------------
if [[ "$build" == 1 || ! -x "$bin" ]]; then
    step "cargo build --bin coder"
    (cd "$repo" && cargo build --bin coder) || die "cargo build failed"
    bin="$CARGO_TARGET_DIR/debug/coder"
elif [[ -n "$(find "$repo/src" "$repo/migrations" -newer "$bin" -print -quit 2>/dev/null)" ]]; then
    echo "note: $bin is older than the sources; pass --build to rebuild it"
fi
[[ -x "$bin" ]] || die "no server binary at $bin"

# --- a fresh server ------------------------------------------------------------------------
step "starting $bin server"
: >"$work/server.log"
# The server reads CODER_* settings from the environment; none of the caller's may leak in.
(
    for var in $(compgen -e); do
        [[ "$var" == CODER_* ]] && unset "$var"
    done
    export NO_COLOR=1
    exec "$bin" server \
        --http-address 127.0.0.1:0 \
        --data-dir "$work/data" \
        --experiments oauth2,mcp-server-http \
        >"$work/server.out" 2>"$work/server.log"
) &
server_pid=$!

url=""
for _ in $(seq 1 300); do
    url="$(sed -n 's/.*[[:space:]]url=\(http:\/\/127\.0\.0\.1:[0-9][0-9]*\).*/\1/p' "$work/server.log" | head -n 1 || true)"
    [[ -n "$url" ]] && break
    kill -0 "$server_pid" 2>/dev/null || die "the server exited before it started"
    sleep 0.1
done
[[ -n "$url" ]] || die "the server did not log its URL within 30 s"
echo "server at $url"

# --- the first user ------------------------------------------------------------------------
export CODER_URL="$url"
export CODER_USERNAME="interop"
export CODER_EMAIL="interop@example.com"
CODER_PASSWORD="$("$venv/bin/python" -c 'import secrets; print("Ix-" + secrets.token_urlsafe(18))')"
export CODER_PASSWORD
step "POST /api/v2/users/first"
"$venv/bin/python" - <<'PY' || die "could not create the first user"
import json, os, sys, urllib.request, urllib.error

body = json.dumps({
    "email": os.environ["CODER_EMAIL"],
    "username": os.environ["CODER_USERNAME"],
    "name": "Interop Check",
    "password": os.environ["CODER_PASSWORD"],
}).encode()
req = urllib.request.Request(
    os.environ["CODER_URL"] + "/api/v2/users/first",
    data=body,
    headers={"Content-Type": "application/json"},
    method="POST",
)
try:
    with urllib.request.urlopen(req, timeout=30) as resp:
        print(f"first user created ({resp.status})")
except urllib.error.HTTPError as err:
    sys.exit(f"POST /api/v2/users/first answered {err.code}: {err.read()[:500]!r}")
PY

# --- the SDK ---------------------------------------------------------------------------------
step "client.py"
set +e
"$venv/bin/python" -u "$here/client.py" | tee "$work/client.out"
status=${PIPESTATUS[0]}
set -e
summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/client.out" | tail -n 1 || true)"
if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "interop: the server exited during the run" >&2
    status=1
fi
exit "$status"
