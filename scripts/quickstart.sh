#!/usr/bin/env bash
# Wharf in one command: set up, collect this machine's logs, watch them live.
#
#   scripts/quickstart.sh             one collector on the embedded store
#   scripts/quickstart.sh --cluster   the same on a local cluster (what scripts/cluster.sh runs)
#
# 1. creates the virtualenv .venv and installs wharf into it (once; needs Python 3.11+; with
#    --cluster the `cluster` extra too: nats-py and the nats-server executable);
# 2. starts a collector on the embedded store, data in ./wharf-data
#    (ingest 127.0.0.1:7070, HTTP API 127.0.0.1:7080);
#    with --cluster: three nats-server processes forming a JetStream cluster (configured from
#    config/nats-server.conf, on ports they pick themselves) and two collectors storing in it
#    with 3 replicas (ingest 127.0.0.1:7070 and :7071, HTTP API 127.0.0.1:7080 and :7081),
#    everything in ./wharf-cluster;
# 3. writes ./wharf-data/shipper.toml, tailing /var/log/**/*.log into topic "system" (and the
#    sample logs of ../shared/data/logs into topic "samples" when that folder exists), and
#    starts a shipper with it (positions in ./wharf-data/shipper-state); with --cluster it
#    sends to both collectors and fails over between them;
# 4. shows the newest records live (wharf tail -n 20) until Ctrl-C;
# 5. stops the shipper, then the collectors (SIGTERM: both flush and save their state), then
#    the NATS servers, and prints the grep and replay commands to try next.
#
# Runs as root or as a normal user: files the user cannot read are skipped by the shipper.
# Run it again: nothing is set up twice and no line is shipped twice (the shipper resumes
# from its saved positions). Other addresses: QUICKSTART_INGEST=HOST:PORT and
# QUICKSTART_HTTP=HOST:PORT (with --cluster also QUICKSTART_INGEST2 and QUICKSTART_HTTP2 for
# the second collector). Logs of the daemons: ./wharf-data/*.log (./wharf-cluster/*.log).
set -euo pipefail

CLUSTER=""
case "${1:-}" in
    "") ;;
    --cluster) CLUSTER=1 ;;
    *) printf 'usage: %s [--cluster]\n' "$0" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PLACE="wharf-data"
[ -z "$CLUSTER" ] || PLACE="wharf-cluster"
DATA="$ROOT/$PLACE"
INGEST="${QUICKSTART_INGEST:-127.0.0.1:7070}"
HTTP="${QUICKSTART_HTTP:-127.0.0.1:7080}"
INGEST2="${QUICKSTART_INGEST2:-127.0.0.1:7071}"
HTTP2="${QUICKSTART_HTTP2:-127.0.0.1:7081}"
PYTHON="${PYTHON:-python3}"
SAMPLES="$(cd "$ROOT/.." && pwd)/shared/data/logs"

if [ -t 2 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
say() { printf '%s==> %s%s\n' "$bold" "$*" "$plain" >&2; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 2; }

# -- 1. the virtualenv ----------------------------------------------------------------------
target="$ROOT" need="$VENV/bin/wharf"
[ -z "$CLUSTER" ] || target="$ROOT[cluster]" need="$VENV/bin/nats-server"
if [ ! -x "$need" ]; then
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11 or newer"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "wharf needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))"
    say "creating the virtualenv .venv and installing wharf (once)"
    [ -x "$VENV/bin/pip" ] || "$PYTHON" -m venv "$VENV" ||
        die "could not create .venv (on Debian and Ubuntu: apt install python3-venv)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -e "$target" ||
        die "pip could not install wharf into .venv (see above)"
fi
WHARF="$VENV/bin/wharf"
PY="$VENV/bin/python"

# Refuse to start next to something already listening: its data would not be ours.
addrs=("$INGEST" "$HTTP")
[ -z "$CLUSTER" ] || addrs+=("$INGEST2" "$HTTP2")
for addr in "${addrs[@]}"; do
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

COLLECTORS=() NATS=() SHIPPER="" TAIL=""
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
    local status=$? pid
    trap - EXIT INT TERM HUP
    [ -n "$TAIL" ] && { kill -TERM "$TAIL" 2>/dev/null || true; wait "$TAIL" 2>/dev/null || true; }
    if [ -n "$SHIPPER" ]; then say "stopping the shipper (it sends what it read and saves its positions)"; fi
    stop "$SHIPPER" shipper
    if [ "${#COLLECTORS[@]}" -gt 0 ]; then say "stopping the collector${CLUSTER:+s}"; fi
    for pid in "${COLLECTORS[@]}"; do stop "$pid" collector; done
    if [ "${#NATS[@]}" -gt 0 ]; then say "stopping the NATS servers"; fi
    for pid in "${NATS[@]}"; do stop "$pid" nats-server; done
    rm -f "$DATA"/*.pid
    if [ "${#COLLECTORS[@]}" -gt 0 ] && [ -z "$CLUSTER" ]; then
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
    elif [ "${#COLLECTORS[@]}" -gt 0 ]; then
        cat >&2 <<EOF

${bold}Wharf stopped; the NATS cluster's data stays in ./wharf-cluster/nats.${plain} Next:

  scripts/cluster.sh                                            # all of it again
  .venv/bin/wharf topics describe system                        # then, while it runs:
  .venv/bin/wharf grep -i error --since 1h                      # through the first collector
  WHARF_HTTP=http://$HTTP2 .venv/bin/wharf grep -i error --since 1h   # the same, the second
  .venv/bin/wharf status                                        # streams, leaders, replicas
EOF
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 0' INT  # Ctrl-C is how this ends: a success
trap 'exit 143' TERM HUP

# Wait until `probe` succeeds; give up when the process `pid` exits or after 60 s.
await() {  # pid what logfile probe...
    local pid=$1 what=$2 logfile=$3
    shift 3
    for _ in $(seq 300); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 5 "$logfile" >&2; die "$what did not start ($logfile)"; }
        sleep 0.2
    done
    die "$what did not answer in 60 s ($logfile)"
}

# -- 2a. (--cluster) three NATS servers -----------------------------------------------------
# A JetStream cluster needs its route addresses configured up front (QUICKSTART_NATS_ROUTES,
# three ports); client and monitoring ports are picked by each server and read from its log.
read -r -a ROUTES <<<"${QUICKSTART_NATS_ROUTES:-6222 6223 6224}"
port_in_log() {  # logfile "what it listens for": the port, once logged
    sed -n "s/.*Listening for $2 connections on [^ ]*:\([0-9][0-9]*\).*/\1/p" "$1" | tail -n 1
}
has_port() { [ -n "$(port_in_log "$1" "$2")" ]; }
start_nats() {  # n (1..3)
    local n=$1 conf="$DATA/nats/n$1.conf" logfile="$DATA/nats-n$1.log" routes="" port
    for port in "${ROUTES[@]}"; do routes="$routes${routes:+, }nats-route://127.0.0.1:$port"; done
    mkdir -p "$DATA/nats"
    # config/nats-server.conf with this machine's addresses: loopback, a store of its own.
    sed -e "s/^server_name: .*/server_name: n$n/" \
        -e 's/^listen: .*/listen: 127.0.0.1:-1/' \
        -e 's/^http: .*/http: 127.0.0.1:-1/' \
        -e "s|^  store_dir: .*|  store_dir: \"$DATA/nats/n$n\"|" \
        -e 's/^  max_file_store: .*/  max_file_store: 10GB/' \
        -e "s/^  listen: 0.0.0.0:6222/  listen: 127.0.0.1:${ROUTES[n-1]}/" \
        -e '/^    nats-route:/d' \
        -e "s|^  routes: \[|  routes: [$routes|" \
        "$ROOT/config/nats-server.conf" >"$conf"
    : >"$logfile"
    detached "$VENV/bin/nats-server" -c "$conf" >>"$logfile" 2>&1 &
    NATS+=("$!")
    echo "$!" >"$DATA/nats-n$n.pid"
    await "$!" "nats-server n$n" "$logfile" has_port "$logfile" client
}
if [ -n "$CLUSTER" ]; then
    [ "${#ROUTES[@]}" -eq 3 ] || die "QUICKSTART_NATS_ROUTES must be three ports, not '${ROUTES[*]}'"
    say "starting three NATS servers (JetStream, config/nats-server.conf), data in ./wharf-cluster/nats"
    urls=""
    for n in 1 2 3; do
        start_nats "$n"
        urls="$urls${urls:+, }\"nats://127.0.0.1:$(port_in_log "$DATA/nats-n$n.log" client)\""
    done
    # JetStream is ready once each server is current with the cluster's meta leader.
    js_ready() {
        local n port
        for n in 1 2 3; do
            port=$(sed -n 's/.*Starting http monitor on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$DATA/nats-n$n.log" | tail -n 1)
            [ -n "$port" ] || return 1
            "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
                "http://127.0.0.1:$port/healthz" || return 1
        done
    }
    await "${NATS[0]}" "the NATS cluster" "$DATA/nats-n1.log" js_ready
    cat >"$DATA/collector.toml" <<EOF
# Written by scripts/quickstart.sh --cluster (see config/collector.toml for every key).
[cluster]
nats = [$urls]
replicas = 3
EOF
fi

# -- 2b. the collector(s) -------------------------------------------------------------------
start_collector() {  # name ingest http
    # The embedded store lives in ./wharf-data itself; a cluster collector keeps no records.
    local name=$1 logfile="$DATA/$1.log" args=(--data-dir "$DATA")
    [ -z "$CLUSTER" ] || args=(--config "$DATA/collector.toml" --data-dir "$DATA/$name-data")
    detached "$WHARF" collector run "${args[@]}" \
        --listen "$2" --http "$3" --log-level warning >>"$logfile" 2>&1 &
    COLLECTORS+=("$!")
    echo "$!" >"$DATA/$name.pid"
    await "$!" "the collector" "$logfile" env WHARF_HTTP="http://$3" "$WHARF" status
}
if [ -z "$CLUSTER" ]; then
    say "starting the collector: data in ./wharf-data, ingest $INGEST, API http://$HTTP"
    start_collector collector "$INGEST" "$HTTP"
else
    say "starting two collectors on the NATS cluster: ingest $INGEST and $INGEST2, API http://$HTTP and http://$HTTP2"
    start_collector collector "$INGEST" "$HTTP"
    start_collector collector2 "$INGEST2" "$HTTP2"
fi

# -- 3. the shipper -------------------------------------------------------------------------
sends="$INGEST"
[ -z "$CLUSTER" ] || sends="$INGEST,$INGEST2"
"$PY" - "$DATA" "$sends" "$SAMPLES" >"$DATA/shipper.toml.tmp" <<'EOF'
import json, os, sys
data, sends, samples = sys.argv[1:4]
q = json.dumps  # a JSON string is a valid TOML basic string
print("# Written by scripts/quickstart.sh (see config/shipper.toml for every key).")
print(f"collectors = {q(sends.split(','))}")
print(f"state_dir = {q(os.path.join(data, 'shipper-state'))}")
print("\n[[inputs]]\npaths = [\"/var/log/**/*.log\"]\ntopic = \"system\"\nparser = \"auto\"")
if os.path.isdir(samples):
    print(f"\n[[inputs]]\npaths = [{q(os.path.join(samples, '*.log'))}]")
    print("topic = \"samples\"\nparser = \"auto\"")
EOF
mv "$DATA/shipper.toml.tmp" "$DATA/shipper.toml"
what="/var/log/**/*.log"
[ -d "$SAMPLES" ] && what="$what and $SAMPLES/*.log"
say "starting the shipper: $what (config ./$PLACE/shipper.toml)"
detached "$WHARF" shipper run --config "$DATA/shipper.toml" --log-level warning \
    >>"$DATA/shipper.log" 2>&1 &
SHIPPER=$!
echo "$SHIPPER" >"$DATA/shipper.pid"

# -- 4. watch -------------------------------------------------------------------------------
say "the newest records of every topic, live (Ctrl-C to stop):"
"$WHARF" tail -n 20 </dev/null &
TAIL=$!
wait "$TAIL" || true  # a trapped signal (Ctrl-C) ends the wait at once, then finish runs
