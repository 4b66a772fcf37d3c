#!/usr/bin/env bash
# Wharf in one command: set up, collect this machine's logs, watch them live.
#
#   scripts/quickstart.sh
#
# 1. creates the virtualenv .venv and installs wharf into it (once; needs Python 3.11+);
# 2. starts a collector on the embedded store, data in ./wharf-data
#    (ingest 127.0.0.1:7070, HTTP API 127.0.0.1:7080);
# 3. writes ./wharf-data/shipper.toml, tailing /var/log/**/*.log into topic "system" (and the
#    sample logs of ../shared/data/logs into topic "samples" when that folder exists), and
#    starts a shipper with it (positions in ./wharf-data/shipper-state);
# 4. shows the newest records live (wharf tail -n 20) until Ctrl-C;
# 5. stops the shipper, then the collector (SIGTERM: both flush and save their state), and
#    prints the grep and replay commands to try next.
#
# Runs as root or as a normal user: files the user cannot read are skipped by the shipper.
# Run it again: nothing is set up twice and no line is shipped twice (the shipper resumes
# from its saved positions). Other addresses: QUICKSTART_INGEST=HOST:PORT and
# QUICKSTART_HTTP=HOST:PORT. Logs of the two daemons: ./wharf-data/*.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
DATA="$ROOT/wharf-data"
INGEST="${QUICKSTART_INGEST:-127.0.0.1:7070}"
HTTP="${QUICKSTART_HTTP:-127.0.0.1:7080}"
PYTHON="${PYTHON:-python3}"
SAMPLES="$(cd "$ROOT/.." && pwd)/shared/data/logs"

if [ -t 2 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
say() { printf '%s==> %s%s\n' "$bold" "$*" "$plain" >&2; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 2; }

# -- 1. the virtualenv ----------------------------------------------------------------------
if [ ! -x "$VENV/bin/wharf" ]; then
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11 or newer"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "wharf needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))"
    say "creating the virtualenv .venv and installing wharf (once)"
    "$PYTHON" -m venv "$VENV" ||
        die "could not create .venv (on Debian and Ubuntu: apt install python3-venv)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -e "$ROOT" ||
        die "pip could not install wharf into .venv (see above)"
fi
WHARF="$VENV/bin/wharf"
PY="$VENV/bin/python"

# Refuse to start next to something already listening: its data would not be ours.
for addr in "$INGEST" "$HTTP"; do
    if "$PY" - "$addr" <<'EOF'
import socket, sys
host, _, port = sys.argv[1].rpartition(":")
try:
    socket.create_connection((host or "127.0.0.1", int(port)), timeout=1).close()
except OSError:
    sys.exit(1)
EOF
    then
        die "something already listens on $addr (another collector?): stop it, or set QUICKSTART_INGEST / QUICKSTART_HTTP"
    fi
done
export WHARF_COLLECTOR="$INGEST" WHARF_HTTP="http://$HTTP"
mkdir -p "$DATA"

# The daemons get their own session: the Ctrl-C that ends the tail does not reach them, so
# they are stopped in order (shipper first, so its last batches still reach the collector).
# (exec: run with &, the function's subshell becomes the daemon, so $! is the daemon's pid)
detached() { exec "$PY" -c 'import os, sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])' "$@"; }

COLLECTOR="" SHIPPER="" TAIL=""
stop() {  # pid name: SIGTERM, then wait (SIGKILL after 60 s, which should never be needed)
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || return 0
    ( sleep 60; kill -KILL "$1" 2>/dev/null && echo "quickstart: $2 did not stop; killed" >&2 ) &
    local watchdog=$!
    wait "$1" 2>/dev/null || true
    kill "$watchdog" 2>/dev/null || true
    wait "$watchdog" 2>/dev/null || true
}
finish() {
    local status=$?
    trap - EXIT INT TERM HUP
    [ -n "$TAIL" ] && { kill -TERM "$TAIL" 2>/dev/null || true; wait "$TAIL" 2>/dev/null || true; }
    if [ -n "$SHIPPER" ]; then say "stopping the shipper (it sends what it read and saves its positions)"; fi
    stop "$SHIPPER" shipper
    if [ -n "$COLLECTOR" ]; then say "stopping the collector"; fi
    stop "$COLLECTOR" collector
    rm -f "$DATA/shipper.pid" "$DATA/collector.pid"
    if [ -n "$COLLECTOR" ]; then
        cat >&2 <<EOF

${bold}Wharf stopped; the logs it collected stay in ./wharf-data.${plain} Next:

  .venv/bin/wharf collector run --data-dir ./wharf-data &     # the collector again
  .venv/bin/wharf topics list                                   # topics, sizes, compression
  .venv/bin/wharf grep -i error --since 1h                      # like grep, across hosts
  .venv/bin/wharf grep -t samples -F 'Invalid user' -C 2        # with context lines
  .venv/bin/wharf grep -t samples '' --where 'status>=500' -o json
  .venv/bin/wharf replay -t system --from-time 1h --sink file:/tmp/system.ndjson
  .venv/bin/wharf shipper run --config ./wharf-data/shipper.toml &   # and the shipper
EOF
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 0' INT  # Ctrl-C is how this ends: a success
trap 'exit 143' TERM HUP

# -- 2. the collector -----------------------------------------------------------------------
say "starting the collector: data in ./wharf-data, ingest $INGEST, API http://$HTTP"
detached "$WHARF" collector run --data-dir "$DATA" --listen "$INGEST" --http "$HTTP" \
    --log-level warning >>"$DATA/collector.log" 2>&1 &
COLLECTOR=$!
echo "$COLLECTOR" >"$DATA/collector.pid"
for _ in $(seq 300); do
    "$WHARF" status >/dev/null 2>&1 && break
    kill -0 "$COLLECTOR" 2>/dev/null || { tail -n 5 "$DATA/collector.log" >&2; COLLECTOR=""; die "the collector did not start (./wharf-data/collector.log)"; }
    sleep 0.2
done
"$WHARF" status >/dev/null 2>&1 || die "the collector did not answer in 60 s (./wharf-data/collector.log)"

# -- 3. the shipper -------------------------------------------------------------------------
"$PY" - "$DATA" "$INGEST" "$SAMPLES" >"$DATA/shipper.toml.tmp" <<'EOF'
import json, os, sys
data, ingest, samples = sys.argv[1:4]
q = json.dumps  # a JSON string is a valid TOML basic string
print("# Written by scripts/quickstart.sh (see config/shipper.toml for every key).")
print(f"collectors = [{q(ingest)}]")
print(f"state_dir = {q(os.path.join(data, 'shipper-state'))}")
print("\n[[inputs]]\npaths = [\"/var/log/**/*.log\"]\ntopic = \"system\"\nparser = \"auto\"")
if os.path.isdir(samples):
    print(f"\n[[inputs]]\npaths = [{q(os.path.join(samples, '*.log'))}]")
    print("topic = \"samples\"\nparser = \"auto\"")
EOF
mv "$DATA/shipper.toml.tmp" "$DATA/shipper.toml"
what="/var/log/**/*.log"
[ -d "$SAMPLES" ] && what="$what and $SAMPLES/*.log"
say "starting the shipper: $what (config ./wharf-data/shipper.toml)"
detached "$WHARF" shipper run --config "$DATA/shipper.toml" --log-level warning \
    >>"$DATA/shipper.log" 2>&1 &
SHIPPER=$!
echo "$SHIPPER" >"$DATA/shipper.pid"

# -- 4. watch -------------------------------------------------------------------------------
say "the newest records of every topic, live (Ctrl-C to stop):"
"$WHARF" tail -n 20 </dev/null &
TAIL=$!
wait "$TAIL" || true  # a trapped signal (Ctrl-C) ends the wait at once, then finish runs
