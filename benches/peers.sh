#!/usr/bin/env bash
# Runs the peers harness (../shared/peers: gdnsd, PowerDNS, NSD) with
# signpost in its candidate slot, from a scratch copy, and prints the
# summary. Takes ~17 minutes for the full run; QUICK=1 for ~4 minutes
# (pinned phase, gdnsd and NSD only, 2 rounds, no latency run).
#   benches/peers.sh            # from the repository root
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
peers="${PEERS_DIR:-$root/../shared/peers}"
[ -d "$peers" ] || { echo "peers harness not found at $peers (set PEERS_DIR)" >&2; exit 1; }
cargo build --release --manifest-path "$root/Cargo.toml"
work="$(mktemp -d /tmp/signpost-peers.XXXXXX)"
cp -r "$peers/." "$work/"
cd "$work"
export SIGNPOST_BIN="$root/target/release/signpost"
export CANDIDATE_CMD="exec $work/candidates/signpost.sh" CANDIDATE_NAME=signpost CANDIDATE_PORT=5310 CANDIDATE_GSLB=1
if [ "${QUICK:-0}" = 1 ]; then
  export SKIP_CHECK=1 ROUNDS=2 DURATION=8 LAT_DURATION=0 PHASES=pinned-1t PEERS="nsd gdnsd"
fi
./run-peers.sh "$@"
echo "results in $work/results/"
