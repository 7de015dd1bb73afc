#!/usr/bin/env bash
# The soak (docs/performance.md, "Soak"): 10 minutes at a fixed 20,000 qps from dnsperf over
# 100 sockets, 50,000 ECS /24s from ~250 countries, a region failing and recovering every 30 s,
# a configuration reload every 20 s. Exits 1 if a query was lost, an rcode was not NOERROR, an
# answer held a failed region after the failover bound, RSS moved more than 10% after the first
# minute, or the open descriptors were not flat. benches/soak.py has the details.
#
#   benches/soak.sh                          # cargo build --release, then the 10-minute run
#   SKIP_BUILD=1 DURATION=120 benches/soak.sh
#   DB_EVERY=3 benches/soak.sh               # every 3rd reload also replaces the GeoIP file
#
# Needs dnsperf (apt-get install dnsperf) and GeoLite2-City (pip install maxminddb-geolite2, or
# SIGNPOST_TEST_MMDB=/path/GeoLite2-City.mmdb). Run nothing else beside it: it is a measurement.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
command -v dnsperf >/dev/null || { echo "soak: dnsperf not found (apt-get install dnsperf)" >&2; exit 1; }
db="${SIGNPOST_TEST_MMDB:-}"
if [ -z "$db" ]; then
  db="$(python3 -c 'import _maxminddb_geolite2, os; print(os.path.join(os.path.dirname(_maxminddb_geolite2.__file__), "GeoLite2-City.mmdb"))' 2>/dev/null || true)"
fi
[ -f "$db" ] || { echo "soak: no GeoLite2-City (pip install maxminddb-geolite2, or set SIGNPOST_TEST_MMDB)" >&2; exit 1; }
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release
bin="$root/target/release/signpost"
count=50000 seed=20240601
# the same cache as benches/peers.sh
key="$( { sha256sum <benches/gen_ecs_many.py; echo "$db $(stat -c %s-%Y "$db") $count $seed"; } | sha256sum | cut -c1-16)"
queries="/tmp/signpost-ecs-many/ecs-many-$key.bin"
if [ ! -f "$queries" ]; then
  mkdir -p /tmp/signpost-ecs-many
  python3 benches/gen_ecs_many.py --db "$db" --out "$queries.tmp" --count "$count" --seed "$seed"
  mv "$queries.tmp" "$queries"; mv "$queries.tmp.json" "$queries.json"
fi
exec python3 benches/soak.py --bin "$bin" --queries "$queries" --db "$db" \
  --duration "${DURATION:-600}" --qps "${QPS:-20000}" --clients "${CLIENTS:-100}" \
  --db-every "${DB_EVERY:-0}" --workers "${WORKERS:-0}" ${OUT:+--out "$OUT"}
