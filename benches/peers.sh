#!/usr/bin/env bash
# Runs the peers harness (../shared/peers: NSD, gdnsd, PowerDNS, Knot) with signpost in its
# candidate slot, from a scratch copy in /tmp, and prints the summary. With BASELINE_BIN a second
# signpost runs as a second candidate in the same rounds, so the two are compared within one run
# instead of across runs on a noisy shared machine: two builds, or one build with two steering
# configurations (BASELINE_BIN = the same binary, different CANDIDATE_/BASELINE_POLICY/SELECT).
#
#   benches/peers.sh                                       # full run (runs cargo build --release first)
#   SKIP_BUILD=1 BASELINE_BIN=/tmp/signpost-baseline benches/peers.sh   # current build vs a baseline
#   QUICK=1 ...                                            # pinned phase only, 2 rounds, no behaviour checks
#   PEERS="nsd gdnsd knot" ...                             # choose the peers [nsd gdnsd pdns knot]
#   benches/peers.sh up                                    # other harness commands pass through
#
# One build, two policies in the same run (CPU per answer of hash vs weighted), from the project root:
#   SKIP_BUILD=1 SKIP_CHECK=1 BASELINE_BIN=target/release/signpost CANDIDATE_NAME=signpost-hash CANDIDATE_POLICY=hash CANDIDATE_SELECT=hash BASELINE_NAME=signpost-weighted BASELINE_POLICY=weighted QUICK=1 benches/peers.sh
# Drop QUICK=1 for the full 3 rounds x 2 phases (keep SKIP_CHECK=1). SKIP_CHECK=1 because the
# harness's behaviour checks (dig table against nearest-region expectations, eu-west failover
# polling) assume policy geo. A candidate whose policy is not geo runs with gslb=0 anyway (see
# CANDIDATE_GSLB), so without SKIP_CHECK=1 it would only show up in the dig tables (listed as "not
# polled") and the checks would cost ~2 min for nothing. In every phase the patched harness still
# waits until each such candidate answers the NA/EU/AS test clients' `www A` with LB addresses,
# and stops the run if it never does; a binary that rejects the policy or select exits at start,
# which stops the run as well (its log tail shows why).
#
# Knobs (environment), besides the harness's own (ROUNDS, DURATION, PHASES, LAT_DURATION,
# SKIP_CHECK, FAILOVER_MODES, ...: see ../shared/peers/README.md):
#   SIGNPOST_BIN      candidate binary; when set, nothing is built      [target/release/signpost]
#   SKIP_BUILD=1      use target/release/signpost as it is (no cargo build)
#   CANDIDATE_NAME    peer name of the first candidate (in the summary)  [signpost]
#   CANDIDATE_PORT    its port                                           [5310]
#   CANDIDATE_POLICY  `policy` of the service www.example.test.: geo | weighted | failover | hash |
#                     least-loaded | fastest                             [geo]
#   CANDIDATE_SELECT  `select` of the service (endpoints within a region): weighted | hash |
#                     least-loaded | fastest; unset or empty: no select key   [unset]
#   CANDIDATE_GSLB    1: held to the harness's geo expectations (convergence wait, failover
#                     checks); 0: not       [1 if the policy is geo, else 0]
#   BASELINE_BIN      second signpost binary (may be the same file as the first), candidate
#                     BASELINE_NAME [signpost-base] on 127.0.0.1:BASELINE_PORT [5311]; same
#                     adapter, and the same config except BASELINE_POLICY [geo] /
#                     BASELINE_SELECT [unset] / BASELINE_GSLB [1 if its policy is geo, else 0].
#                     Relative paths (this one and SIGNPOST_BIN) are taken from the current
#                     directory. The BASELINE_* knobs without BASELINE_BIN are an error.
#   ECS_MANY=0        leave out the "ecs-many" workload (on by default, see below)
#   ECS_MANY_COUNT [50000] ECS_MANY_SEED [20240601] ECS_MANY_CLIENTS [100]
#   PEERS_DIR         the harness [../shared/peers]
#   DNSSEC=1          signed workloads (issue 17): "plain-do" and "mix-do" (plain and mix with the
#                     DO bit, dnsperf -D); signpost's zone signed with the ECDSA KSK and ZSK in
#                     tests/data/dnssec (the first candidate only: a baseline runs unsigned, so
#                     BASELINE_BIN=<the same build> compares the same DO queries signed and
#                     unsigned in one run), Knot's with mod-onlinesign (see benches/peers_patch.py).
#                     E.g. SKIP_BUILD=1 BASELINE_BIN=target/release/signpost BASELINE_NAME=unsigned
#                          DNSSEC=1 ECS_MANY=0 QUICK=1 PEERS="knot" benches/peers.sh
#   VETH=1            run across a veth pair (../shared/peers/veth-peers.sh, needs root): servers
#                     and fake LBs in netns sp-srv on 198.18.0.1, dnsperf in sp-cli on 198.18.0.2
#   XDP=native|skb    implies VETH=1; the veth harness hands ANCHOR_XDP_IFACE=veth-s and
#                     ANCHOR_XDP_MODE to the candidates, and the patched adapter turns them into
#                     `[server.xdp]` for the candidates whose CANDIDATE_XDP [1] / BASELINE_XDP [0]
#                     is 1. So signpost over AF_XDP against the same build over sockets, in one run:
#                       SKIP_BUILD=1 BASELINE_BIN=target/release/signpost BASELINE_NAME=signpost-sockets \
#                         XDP=native PEERS="gdnsd knot" benches/peers.sh
#                     While an XDP candidate runs, its program is attached to veth-s for the whole
#                     run, so the other servers' packets pass through it (XDP_PASS); compare with a
#                     VETH=1 run without XDP to see what that costs them.
# QUICK=1 only changes defaults (an explicit ROUNDS=... still wins): SKIP_CHECK=1 ROUNDS=2
# DURATION=8 LAT_DURATION=0 PHASES=pinned-1t PEERS="nsd gdnsd knot".
#
# Workloads: the harness's plain / ecs / mix, plus "ecs-many" (many clients, many networks):
# ECS_MANY_COUNT prebuilt `www.example.test A` queries, each with its own ECS /24 located in one
# of ~250 countries (benches/gen_ecs_many.py; cached in /tmp/signpost-ecs-many), sent with
# `dnsperf -B` from ECS_MANY_CLIENTS sockets. Same -l bound and server CPU sampling as the others.
# Like plain and ecs they only ask for `www.example.test A`, so they work with every policy (with
# policy hash or weighted the answers follow the policy instead of the client's location).
#
# The harness supports one candidate and three workloads, and /work/shared is read-only, so
# benches/peers_patch.py edits the scratch copy (a second candidate slot in run-peers.sh, the
# fourth workload in bin/bench.py, SIGNPOST_POLICY/SIGNPOST_SELECT in candidates/signpost.sh,
# the wait for gslb=0 candidates in bin/check.py; its docstring lists every edit). All peers and
# both candidates take turns in every round. The binaries are copied into the scratch dir first,
# so a rebuild of target/release during the run cannot swap the candidate between phases (one
# copy serves both candidates when BASELINE_BIN is the same file). The generated configs stay in
# <scratch>/run/<name>/signpost.toml, and env.txt of the results records each candidate's policy,
# select and binary. With a baseline, benches/peers_compare.py appends a candidate-vs-baseline
# table, titled with the two names, to summary.md.
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

# ---- the candidates' names, ports and service settings: checked before anything is built or run
POLICIES=(geo weighted failover hash least-loaded fastest)   # signpost's `policy` values
SELECTS=(weighted hash least-loaded fastest)                 # and its `select` values
one_of() { local v=$1 w; shift; for w in "$@"; do [ "$v" = "$w" ] && return 0; done; return 1; }
check_candidate() {  # check_candidate NAME PORT POLICY SELECT GSLB KNOB-PREFIX
  [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "$6_NAME '$1': use letters, digits, '.', '_' and '-'"
  if one_of "$1" nsd gdnsd pdns knot candidate candidate2 || [[ $1 == lb-* ]]; then
    die "$6_NAME '$1' is taken by the harness (nsd gdnsd pdns knot candidate candidate2 lb-*)"
  fi
  [[ $2 =~ ^[0-9]+$ ]] || die "$6_PORT '$2' is not a port number"
  one_of "$3" "${POLICIES[@]}" || die "$6_POLICY '$3': expected one of ${POLICIES[*]}"
  [ -z "$4" ] || one_of "$4" "${SELECTS[@]}" || die "$6_SELECT '$4': expected one of ${SELECTS[*]} (or empty)"
  one_of "$5" 0 1 || die "$6_GSLB '$5': expected 0 or 1"
}
gslb_default() { [ "$1" = geo ] && echo 1 || echo 0; }   # geo expectations hold for policy geo only

# ---- across a veth pair (VETH=1, or XDP=native|skb which implies it): the shared veth-peers.sh
case "${XDP:-}" in ""|native|skb) ;; *) die "XDP '$XDP': expected native or skb (or unset)";; esac
[ -z "${XDP:-}" ] || VETH=1
VETH="${VETH:-0}"
one_of "$VETH" 0 1 || die "VETH '$VETH': expected 0 or 1"
CANDIDATE_XDP="${CANDIDATE_XDP:-1}" BASELINE_XDP="${BASELINE_XDP:-0}"
one_of "$CANDIDATE_XDP" 0 1 || die "CANDIDATE_XDP '$CANDIDATE_XDP': expected 0 or 1"
one_of "$BASELINE_XDP" 0 1 || die "BASELINE_XDP '$BASELINE_XDP': expected 0 or 1"
xdp_note() { [ -n "${XDP:-}" ] && [ "$1" = 1 ] && echo ", XDP $XDP on veth-s" || true; }
if [ "$VETH" = 1 ] && [ "$(id -u)" != 0 ]; then die "VETH=1/XDP=...: needs root (network namespaces)"; fi

CANDIDATE_NAME="${CANDIDATE_NAME:-signpost}" CANDIDATE_PORT="${CANDIDATE_PORT:-5310}"
CANDIDATE_POLICY="${CANDIDATE_POLICY:-geo}" CANDIDATE_SELECT="${CANDIDATE_SELECT:-}"
CANDIDATE_GSLB="${CANDIDATE_GSLB:-$(gslb_default "$CANDIDATE_POLICY")}"
check_candidate "$CANDIDATE_NAME" "$CANDIDATE_PORT" "$CANDIDATE_POLICY" "$CANDIDATE_SELECT" "$CANDIDATE_GSLB" CANDIDATE
if [ -n "${BASELINE_BIN:-}" ]; then
  BASELINE_NAME="${BASELINE_NAME:-signpost-base}" BASELINE_PORT="${BASELINE_PORT:-5311}"
  BASELINE_POLICY="${BASELINE_POLICY:-geo}" BASELINE_SELECT="${BASELINE_SELECT:-}"
  BASELINE_GSLB="${BASELINE_GSLB:-$(gslb_default "$BASELINE_POLICY")}"
  check_candidate "$BASELINE_NAME" "$BASELINE_PORT" "$BASELINE_POLICY" "$BASELINE_SELECT" "$BASELINE_GSLB" BASELINE
  [ "$BASELINE_NAME" != "$CANDIDATE_NAME" ] || die "BASELINE_NAME must differ from CANDIDATE_NAME ($CANDIDATE_NAME)"
  [ "$BASELINE_PORT" != "$CANDIDATE_PORT" ] || die "BASELINE_PORT must differ from CANDIDATE_PORT ($CANDIDATE_PORT)"
else
  for v in BASELINE_NAME BASELINE_PORT BASELINE_POLICY BASELINE_SELECT BASELINE_GSLB; do
    [ -z "${!v:-}" ] || die "$v is set but BASELINE_BIN is not (for the same build: BASELINE_BIN=target/release/signpost)"
  done
fi

# ---- the binaries: built (unless told not to), then copied so the run sees one fixed build each
if [ -z "${SIGNPOST_BIN:-}" ]; then
  [ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --manifest-path "$root/Cargo.toml"
  SIGNPOST_BIN="$root/target/release/signpost"
fi
[ -f "$SIGNPOST_BIN" ] && [ -x "$SIGNPOST_BIN" ] || die "signpost binary not found or not executable: $SIGNPOST_BIN"
SIGNPOST_BIN="$(realpath -- "$SIGNPOST_BIN")"   # absolute: the copies below are made after cd
if [ -n "${BASELINE_BIN:-}" ]; then
  [ -f "$BASELINE_BIN" ] && [ -x "$BASELINE_BIN" ] || die "BASELINE_BIN is not an executable file: $BASELINE_BIN"
  BASELINE_BIN="$(realpath -- "$BASELINE_BIN")"
fi

work="$(mktemp -d /tmp/signpost-peers.XXXXXX)"
cp -r "$peers/." "$work/"
chmod -R u+w "$work"   # the shared folder is read-only and cp keeps the modes; the harness writes here
cd "$work"
mkdir -p "$work/signpost-bins"
cp "$SIGNPOST_BIN" "$work/signpost-bins/signpost"

# ---- patch the copy: second candidate slot, ecs-many workload, SIGNPOST_POLICY/SIGNPOST_SELECT in
# the adapter, the wait for gslb=0 candidates (benches/peers_patch.py says how)
dnssec_keys=""
if [ "${DNSSEC:-0}" = 1 ]; then
  keys="$root/tests/data/dnssec"
  dnssec_keys="$keys/Kexample.test.+013+64068.private $keys/Kexample.test.+013+13951.private"
  export DNSSEC
fi
python3 "$benches/peers_patch.py" "$work"

# ---- the candidates' command lines: the patched candidates/signpost.sh reads SIGNPOST_BIN,
# SIGNPOST_POLICY and SIGNPOST_SELECT. All three are set on every command line (SELECT empty when
# unset), so nothing of the caller's environment leaks into one candidate's config.
cand_cmd() {  # cand_cmd BIN POLICY SELECT XDP [DNSSEC-KEYS]
  printf 'SIGNPOST_BIN=%q SIGNPOST_POLICY=%q SIGNPOST_SELECT=%q SIGNPOST_XDP=%q SIGNPOST_DNSSEC_KEYS=%q exec %q' \
    "$1" "$2" "$3" "$4" "${5:-}" "$work/candidates/signpost.sh"
}
cand_desc() {  # cand_desc NAME PORT POLICY SELECT GSLB SOURCE-BIN COPY [note]
  printf '%s: port %s, policy %s%s, gslb %s, %s (sha256 %s)%s' "$1" "$2" "$3" "${4:+, select $4}" "$5" \
    "$6" "$(sha256sum <"$7" | cut -c1-12)" "${8:-}"
}
# ---- candidate slot 1: the current build
export CANDIDATE_NAME CANDIDATE_PORT CANDIDATE_GSLB
CANDIDATE_CMD="$(cand_cmd "$work/signpost-bins/signpost" "$CANDIDATE_POLICY" "$CANDIDATE_SELECT" "$CANDIDATE_XDP" "$dnssec_keys")"
export CANDIDATE_CMD
CANDIDATE_DESC="$(cand_desc "$CANDIDATE_NAME" "$CANDIDATE_PORT" "$CANDIDATE_POLICY" "$CANDIDATE_SELECT" \
  "$CANDIDATE_GSLB" "$SIGNPOST_BIN" "$work/signpost-bins/signpost" "${dnssec_keys:+, zone signed}$(xdp_note "$CANDIDATE_XDP")")"
BASELINE_DESC=""
WAIT_ANY_REGION=""   # the gslb=0 candidates: the patched check.py wait wants valid answers only
[ "$CANDIDATE_GSLB" = 1 ] || WAIT_ANY_REGION="$CANDIDATE_NAME"
log "candidate $CANDIDATE_DESC"
# ---- candidate slot 2: the baseline, same adapter: only the binary and/or policy/select differ
if [ -n "${BASELINE_BIN:-}" ]; then
  same=""
  if [ "$BASELINE_BIN" = "$SIGNPOST_BIN" ]; then   # one build, two configurations: one copy
    base_copy="$work/signpost-bins/signpost"; same=", the same build as $CANDIDATE_NAME"
  else
    base_copy="$work/signpost-bins/signpost-base"; cp "$BASELINE_BIN" "$base_copy"
  fi
  export CANDIDATE2_NAME="$BASELINE_NAME" CANDIDATE2_PORT="$BASELINE_PORT" CANDIDATE2_GSLB="$BASELINE_GSLB"
  CANDIDATE2_CMD="$(cand_cmd "$base_copy" "$BASELINE_POLICY" "$BASELINE_SELECT" "$BASELINE_XDP")"
  export CANDIDATE2_CMD
  BASELINE_DESC="$(cand_desc "$BASELINE_NAME" "$BASELINE_PORT" "$BASELINE_POLICY" "$BASELINE_SELECT" \
    "$BASELINE_GSLB" "$BASELINE_BIN" "$base_copy" "$same$(xdp_note "$BASELINE_XDP")")"
  [ "$BASELINE_GSLB" = 1 ] || WAIT_ANY_REGION="${WAIT_ANY_REGION:+$WAIT_ANY_REGION }$BASELINE_NAME"
  log "candidate $BASELINE_DESC"
  if [ -n "$same" ] && [ "$BASELINE_POLICY" = "$CANDIDATE_POLICY" ] && [ "$BASELINE_SELECT" = "$CANDIDATE_SELECT" ] \
     && [ "$(xdp_note "$BASELINE_XDP")" = "$(xdp_note "$CANDIDATE_XDP")" ]; then
    log "note: both candidates run the same build with the same policy and select (an A/A control)"
  fi
else
  unset CANDIDATE2_CMD   # a second slot only with BASELINE_BIN, whatever the caller's environment holds
fi
# for env.txt of the results (patched run-peers.sh) and the patched check.py wait
export SIGNPOST_DESC="$CANDIDATE_DESC${BASELINE_DESC:+; $BASELINE_DESC}" WAIT_ANY_REGION

if [ "${QUICK:-0}" = 1 ]; then   # defaults only: anything set explicitly wins
  : "${SKIP_CHECK:=1}" "${ROUNDS:=2}" "${DURATION:=8}" "${LAT_DURATION:=0}" "${PHASES:=pinned-1t}" "${PEERS:=nsd gdnsd knot}"
  export SKIP_CHECK ROUNDS DURATION LAT_DURATION PHASES
fi
if [ -n "$WAIT_ANY_REGION" ] && [ "${SKIP_CHECK:-0}" != 1 ] && [ "$cmd" = all ]; then
  log "note: $WAIT_ANY_REGION run(s) with gslb=0: in the behaviour checks only in the dig tables, not in the failover polling; SKIP_CHECK=1 skips the checks"
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

runner=./run-peers.sh
[ "$VETH" = 0 ] || runner=./veth-peers.sh   # the same harness with the servers in netns sp-srv
"$runner" "$@" || { rc=$?; log "$runner failed (exit $rc); logs in $work/run/logs/, results in $work/results/"; exit "$rc"; }

# ---- the candidate-vs-baseline table, appended to the summary
if [ "$cmd" = all ] && [ -n "${BASELINE_BIN:-}" ]; then
  out="$(ls -td "$work"/results/*/ 2>/dev/null | head -1)"
  if [ -n "$out" ] && [ -s "$out/bench.jsonl" ]; then
    python3 "$benches/peers_compare.py" "$out" "$CANDIDATE_NAME" "$CANDIDATE2_NAME" \
      --cand-desc="$CANDIDATE_DESC" --base-desc="$BASELINE_DESC" | tee -a "$out/summary.md"
  fi
fi
echo "results in $work/results/"
[ "$cmd" != up ] || echo "stop with: $work/run-peers.sh down"
