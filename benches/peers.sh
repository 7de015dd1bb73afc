#!/usr/bin/env bash
# Runs the peers harness (../shared/peers: NSD, gdnsd, PowerDNS, Knot) with signpost in its
# candidate slot, from a scratch copy in /tmp, and prints the summary. With BASELINE_BIN a second
# signpost build runs as a second candidate in the same rounds, so the two builds are compared
# within one run instead of across runs on a noisy shared machine.
#
#   benches/peers.sh                                       # full run (runs cargo build --release first)
#   SKIP_BUILD=1 BASELINE_BIN=/tmp/signpost-baseline benches/peers.sh   # current build vs a baseline
#   QUICK=1 ...                                            # pinned phase only, 2 rounds, no behaviour checks
#   PEERS="nsd gdnsd knot" ...                             # choose the peers [nsd gdnsd pdns knot]
#   benches/peers.sh up                                    # other harness commands pass through
#
# Knobs (environment), besides the harness's own (ROUNDS, DURATION, PHASES, LAT_DURATION,
# SKIP_CHECK, FAILOVER_MODES, ...: see ../shared/peers/README.md):
#   SIGNPOST_BIN      candidate binary; when set, nothing is built      [target/release/signpost]
#   SKIP_BUILD=1      use target/release/signpost as it is (no cargo build)
#   BASELINE_BIN      second signpost binary, candidate BASELINE_NAME [signpost-base] on
#                     127.0.0.1:BASELINE_PORT [5311]; same adapter and config as the first
#   ECS_MANY=0        leave out the "ecs-many" workload (on by default, see below)
#   ECS_MANY_COUNT [50000] ECS_MANY_SEED [20240601] ECS_MANY_CLIENTS [100]
#   PEERS_DIR         the harness [../shared/peers]
# QUICK=1 only changes defaults (an explicit ROUNDS=... still wins): SKIP_CHECK=1 ROUNDS=2
# DURATION=8 LAT_DURATION=0 PHASES=pinned-1t PEERS="nsd gdnsd knot".
#
# Workloads: the harness's plain / ecs / mix, plus "ecs-many" (many clients, many networks):
# ECS_MANY_COUNT prebuilt `www.example.test A` queries, each with its own ECS /24 located in one
# of ~250 countries (benches/gen_ecs_many.py; cached in /tmp/signpost-ecs-many), sent with
# `dnsperf -B` from ECS_MANY_CLIENTS sockets. Same -l bound and server CPU sampling as the others.
#
# The harness supports one candidate and three workloads, and /work/shared is read-only, so
# benches/peers_patch.py edits the scratch copy (a second candidate slot in run-peers.sh, the
# fourth workload in bin/bench.py; its docstring lists every edit). All peers and both
# candidates take turns in every round. The binaries are copied into the scratch dir first, so
# a rebuild of target/release during the run cannot swap the candidate between phases.
# With a baseline, benches/peers_compare.py appends a signpost-vs-baseline table to summary.md.
#
# Time: each peer runs 4 workloads per round; per workload and round ~16.5 s in the pinned phase
# (DURATION 10 + latency run 5 + pauses) and ~11 s unpinned, i.e. ~110 s per peer and round.
# Defaults (3 rounds, 2 phases, 4 peers + 2 candidates): ~33 min of benchmark + ~2 min behaviour
# checks and restarts = ~35 min; PEERS="nsd gdnsd knot" ~29 min; QUICK=1 with a baseline ~6.5 min.
# The first run also installs packages (~15 s here) and generates the ecs-many file (~45 s).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
benches="$root/benches"
peers="${PEERS_DIR:-$root/../shared/peers}"
[ -d "$peers" ] || { echo "peers harness not found at $peers (set PEERS_DIR)" >&2; exit 1; }
cmd="${1:-all}"
log() { printf '[%(%H:%M:%S)T] peers.sh: %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---- the binaries: built (unless told not to), then copied so the run sees one fixed build each
if [ -z "${SIGNPOST_BIN:-}" ]; then
  [ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --manifest-path "$root/Cargo.toml"
  SIGNPOST_BIN="$root/target/release/signpost"
fi
[ -x "$SIGNPOST_BIN" ] || die "signpost binary not found or not executable: $SIGNPOST_BIN"
if [ -n "${BASELINE_BIN:-}" ]; then
  [ -x "$BASELINE_BIN" ] || die "BASELINE_BIN is not an executable file: $BASELINE_BIN"
fi

work="$(mktemp -d /tmp/signpost-peers.XXXXXX)"
cp -r "$peers/." "$work/"
chmod -R u+w "$work"   # the shared folder is read-only and cp keeps the modes; the harness writes here
cd "$work"
mkdir -p "$work/signpost-bins"
cp "$SIGNPOST_BIN" "$work/signpost-bins/signpost"

# ---- patch the copy: second candidate slot + ecs-many workload (benches/peers_patch.py says how)
python3 "$benches/peers_patch.py" "$work"

# ---- candidate slot 1: the current build. candidates/signpost.sh reads SIGNPOST_BIN.
export CANDIDATE_NAME=signpost CANDIDATE_PORT=5310 CANDIDATE_GSLB=1
export CANDIDATE_CMD="SIGNPOST_BIN=$(printf %q "$work/signpost-bins/signpost") exec $(printf %q "$work/candidates/signpost.sh")"
# ---- candidate slot 2: the baseline build, same adapter, so only the binary differs
if [ -n "${BASELINE_BIN:-}" ]; then
  cp "$BASELINE_BIN" "$work/signpost-bins/signpost-base"
  export CANDIDATE2_NAME="${BASELINE_NAME:-signpost-base}" CANDIDATE2_PORT="${BASELINE_PORT:-5311}" CANDIDATE2_GSLB=1
  [ "$CANDIDATE2_NAME" != "$CANDIDATE_NAME" ] || die "BASELINE_NAME must differ from $CANDIDATE_NAME"
  [ "$CANDIDATE2_PORT" != "$CANDIDATE_PORT" ] || die "BASELINE_PORT must differ from $CANDIDATE_PORT"
  export CANDIDATE2_CMD="SIGNPOST_BIN=$(printf %q "$work/signpost-bins/signpost-base") exec $(printf %q "$work/candidates/signpost.sh")"
  log "candidate $CANDIDATE_NAME: $SIGNPOST_BIN (sha256 $(sha256sum <"$SIGNPOST_BIN" | cut -c1-12)) on port $CANDIDATE_PORT"
  log "candidate $CANDIDATE2_NAME: $BASELINE_BIN (sha256 $(sha256sum <"$BASELINE_BIN" | cut -c1-12)) on port $CANDIDATE2_PORT"
fi

if [ "${QUICK:-0}" = 1 ]; then   # defaults only: anything set explicitly wins
  : "${SKIP_CHECK:=1}" "${ROUNDS:=2}" "${DURATION:=8}" "${LAT_DURATION:=0}" "${PHASES:=pinned-1t}" "${PEERS:=nsd gdnsd knot}"
  export SKIP_CHECK ROUNDS DURATION LAT_DURATION PHASES
fi
# Knot (mod-geoip, continent-level answers) is a peer by default here; the harness's own default
# is "nsd gdnsd pdns". PowerDNS (Lua records, ~0.5 ms CPU per answer) can be dropped to save time.
export PEERS="${PEERS:-nsd gdnsd pdns knot}"

# ---- ecs-many workload: needs the GeoLite2-City DB the servers use, so resolve it the way the
# harness does (GEOIP_DB, else the pip maxminddb-geolite2 package) and pin it with GEOIP_DB.
if [ "${ECS_MANY:-1}" = 1 ] && [ "$cmd" = all ]; then
  [ "${SKIP_INSTALL:-0}" = 1 ] || ./run-peers.sh install   # python modules + the DB package
  if [ -z "${GEOIP_DB:-}" ]; then
    GEOIP_DB="$(python3 -c 'import _maxminddb_geolite2, os; print(os.path.join(os.path.dirname(_maxminddb_geolite2.__file__), "GeoLite2-City.mmdb"))' 2>/dev/null)" \
      || die "no GeoLite2-City DB (pip maxminddb-geolite2); set GEOIP_DB or ECS_MANY=0"
  fi
  export GEOIP_DB
  count="${ECS_MANY_COUNT:-50000}" seed="${ECS_MANY_SEED:-20240601}"
  # the file depends only on the generator, the DB and the parameters: cache it under that key
  key="$( { sha256sum <"$benches/gen_ecs_many.py"; echo "$GEOIP_DB $(stat -c %s-%Y "$GEOIP_DB") $count $seed"; } | sha256sum | cut -c1-16)"
  cache="/tmp/signpost-ecs-many/ecs-many-$key.bin"
  if [ ! -s "$cache" ] || [ ! -s "$cache.json" ]; then
    log "generating the ecs-many queries ($count, seed $seed; ~45 s) -> $cache"
    mkdir -p "$(dirname "$cache")"
    # write to a per-process name and rename, so a concurrent run never reads a half-written file
    python3 "$benches/gen_ecs_many.py" --db "$GEOIP_DB" --count "$count" --seed "$seed" --out "$cache.$$.tmp"
    mv "$cache.$$.tmp.json" "$cache.json" && mv "$cache.$$.tmp" "$cache"
  fi
  # a copy beside the results, so the run stays reproducible when /tmp is cleaned
  cp "$cache" "$work/ecs-many.bin"
  export ECS_MANY_FILE="$work/ecs-many.bin" ECS_MANY_CLIENTS="${ECS_MANY_CLIENTS:-100}"
  # one line for the run's env.txt (the patched harness writes it there)
  ECS_MANY_DESC="$(python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); m["c"] = sys.argv[2]; print(
    "%(queries)d x www.example.test A, each with its own ECS /24 (%(countries)d countries, seed %(seed)d), dnsperf -B -c %(c)s" % m)' \
    "$cache.json" "$ECS_MANY_CLIENTS")"
  export ECS_MANY_DESC
fi

./run-peers.sh "$@"

# ---- the candidate-vs-baseline table, appended to the summary
if [ "$cmd" = all ] && [ -n "${BASELINE_BIN:-}" ]; then
  out="$(ls -td "$work"/results/*/ 2>/dev/null | head -1)"
  if [ -n "$out" ] && [ -s "$out/bench.jsonl" ]; then
    python3 "$benches/peers_compare.py" "$out" "$CANDIDATE_NAME" "$CANDIDATE2_NAME" | tee -a "$out/summary.md"
  fi
fi
echo "results in $work/results/"
[ "$cmd" != up ] || echo "stop with: $work/run-peers.sh down"
