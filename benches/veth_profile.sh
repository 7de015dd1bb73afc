#!/usr/bin/env bash
# One signpost across a veth pair under dnsperf, with its CPU per query and optionally a perf
# profile: the setup behind "Where the XDP worker's CPU goes" in docs/performance.md.
#
#   sudo benches/veth_profile.sh xdp            # AF_XDP, native mode
#   sudo benches/veth_profile.sh sockets        # the same without [server.xdp]
#   sudo PERF=1 benches/veth_profile.sh xdp     # + perf record -g (perf report -i /tmp/signpost-veth/perf.data)
#
# Two network namespaces joined by a veth pair (sp-prof-s with 198.18.0.1, sp-prof-c with
# 198.18.0.2, the RFC 2544 benchmarking range, used only inside them; both removed at the end).
# signpost runs pinned to CPU 0 in sp-prof-s, dnsperf pinned to CPU 1 in sp-prof-c, as in the
# peers harness's pinned phase: `www.example.test A` without ECS, dnsperf -c 8 -q 200 for SECONDS.
# The service is the harness's (three regions at the same locations, policy geo, GeoLite2-City),
# without health checks. Prints the queries answered and the server's user and system CPU per query
# (from /proc, as the harness reads it). Knobs: SIGNPOST_BIN [target/release/signpost, built if
# missing], SECONDS_RUN [8], MODE [native|skb, for xdp], GEOIP_DB [the pip maxminddb-geolite2 DB].
set -euo pipefail
kind="${1:-}"
case "$kind" in xdp|sockets) ;; *) echo "usage: $0 xdp|sockets" >&2; exit 2;; esac
[ "$(id -u)" = 0 ] || { echo "$0: needs root (network namespaces, XDP)" >&2; exit 1; }
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${SIGNPOST_BIN:-$root/target/release/signpost}"
[ -x "$bin" ] || cargo build --release --manifest-path "$root/Cargo.toml"
secs="${SECONDS_RUN:-8}"
[[ $secs =~ ^[0-9]+$ ]] && [ "$secs" -ge 2 ] && [ "$secs" -le 60 ] || { echo "SECONDS_RUN: 2..60" >&2; exit 2; }
mode="${MODE:-native}"
case "$mode" in native|skb) ;; *) echo "MODE: native or skb" >&2; exit 2;; esac
for t in dnsperf taskset ip; do command -v "$t" >/dev/null || { echo "$0: needs $t" >&2; exit 1; }; done
db="${GEOIP_DB:-$(python3 -c 'import _maxminddb_geolite2, os; print(os.path.join(os.path.dirname(_maxminddb_geolite2.__file__), "GeoLite2-City.mmdb"))' 2>/dev/null || true)}"
[ -s "$db" ] || { echo "$0: no GeoLite2-City DB (pip install maxminddb-geolite2, or set GEOIP_DB)" >&2; exit 1; }

d=/tmp/signpost-veth
mkdir -p "$d"
srv=sp-prof-s cli=sp-prof-c
sp=""
cleanup() {
  [ -z "$sp" ] || kill "$sp" 2>/dev/null || true
  wait 2>/dev/null || true
  ip netns del "$srv" 2>/dev/null || true
  ip netns del "$cli" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip netns add "$srv"; ip netns add "$cli"
ip link add vp-s type veth peer name vp-c
ip link set vp-s netns "$srv"; ip link set vp-c netns "$cli"
ip -n "$srv" addr add 198.18.0.1/24 dev vp-s; ip -n "$cli" addr add 198.18.0.2/24 dev vp-c
for n in "$srv" "$cli"; do ip -n "$n" link set lo up; done
ip -n "$srv" link set vp-s up; ip -n "$cli" link set vp-c up

cat >"$d/example.test.zone" <<'EOF'
$TTL 300
@ 300 IN SOA ns1.example.test. hostmaster.example.test. 2024010101 3600 600 604800 300
@ 300 IN NS ns1.example.test.
ns1 300 IN A 198.18.0.1
EOF
cat >"$d/signpost.toml" <<EOF
[server]
listen = ["198.18.0.1:53"]
workers = 1

[geoip]
database = "$db"

[zones."example.test."]
file = "example.test.zone"

[regions.us-east]
location = { lat = 39.04, lon = -77.49 }
endpoints = [{ address = "127.0.1.1" }]

[regions.eu-west]
location = { lat = 53.35, lon = -6.26 }
endpoints = [{ address = "127.0.2.1" }]

[regions.ap-south]
location = { lat = 19.08, lon = 72.88 }
endpoints = [{ address = "127.0.3.1" }]

[services."www.example.test."]
regions = ["us-east", "eu-west", "ap-south"]
policy = "geo"
ttl = 30
EOF
if [ "$kind" = xdp ]; then
  printf '\n[server.xdp]\ninterfaces = ["vp-s"]\nmode = "%s"\n' "$mode" >>"$d/signpost.toml"
fi
echo "www.example.test A" >"$d/queries.txt"

ip netns exec "$srv" taskset -c 0 "$bin" serve --config "$d/signpost.toml" >"$d/signpost.log" 2>&1 &
sp=$!
for _ in $(seq 50); do
  ip netns exec "$cli" dig +short +tries=1 +time=1 @198.18.0.1 www.example.test A 2>/dev/null | grep -q . && break
  kill -0 "$sp" 2>/dev/null || { cat "$d/signpost.log" >&2; exit 1; }
  sleep 0.2
done
grep -h "xdp:" "$d/signpost.log" || true
cpu() { awk '{print $14 + $15, $14, $15}' "/proc/$sp/stat"; }
read -r t0 u0 s0 < <(cpu)
perf_pid=""
if [ "${PERF:-0}" = 1 ]; then
  perf record -g -o "$d/perf.data" -p "$sp" -- sleep "$secs" >/dev/null 2>&1 &
  perf_pid=$!
fi
ip netns exec "$cli" taskset -c 1 dnsperf -s 198.18.0.1 -p 53 -d "$d/queries.txt" -l "$secs" -c 8 -q 200 >"$d/dnsperf.out" 2>&1
read -r t1 u1 s1 < <(cpu)
[ -z "$perf_pid" ] || wait "$perf_pid" || true
n="$(awk '/Queries completed/{print $3}' "$d/dnsperf.out")"
hz="$(getconf CLK_TCK)"
python3 - "$n" "$((u1 - u0))" "$((s1 - s0))" "$hz" "$kind" <<'PY'
import sys
n, u, s, hz, kind = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if n == 0:
    sys.exit("no query answered")
print(f"{kind}: {n} queries, server CPU {(u + s) / hz / n * 1e6:.2f} us/query "
      f"(user {u / hz / n * 1e6:.2f}, system {s / hz / n * 1e6:.2f})")
PY
[ "${PERF:-0}" != 1 ] || echo "profile: perf report -i $d/perf.data --children --sort sym"
