#!/usr/bin/env python3
"""Write the query file of the "ecs-many" workload (many clients, many networks) for dnsperf -B.

Every query is `www.example.test A` carrying its own EDNS Client Subnet option with a distinct
IPv4 /24. The /24s are real allocated address space, located in (nearly) every country of the
GeoLite2-City database the peers harness uses, so a GSLB server has to do a real GeoIP lookup
for almost every query and cannot answer from a handful of cached client networks.

Output format (`dnsperf -B`, RFC 1035 4.2.2 "TCP stream"): for each query a 2-byte big-endian
length, then the raw DNS message. dnsperf rewrites the first two bytes (the message ID) and
sends the rest as is. Each message is byte-for-byte what `dnsperf -E 8:<ecs>` sends in the
harness's single-subnet "ecs" workload (RD set, EDNS0 with a 4096-byte payload, one ECS option
with family 1, source prefix 24, scope 0, 3 address bytes), so "ecs" and "ecs-many" differ only
in how many client networks and client sockets there are.

How the /24s are picked (deterministic for a given database, --seed and --count):
  1. Walk every IPv4 network of the database and keep those with a country and a location.
     A /24 is a candidate for country C if looking up its first address gives a network of C:
     every /24 inside a network of prefix <= 24, and for a longer prefix only the network that
     starts at a /24 boundary (x.y.z.0 is the address the server will look up).
  2. Split --count over the countries as evenly as possible: a country with fewer candidate
     /24s than its share gives all of them and the rest is spread over the other countries.
  3. Draw that many distinct /24s per country uniformly at random, then shuffle all queries so
     consecutive queries come from different countries.

  python3 benches/gen_ecs_many.py --db GeoLite2-City.mmdb --out queries-ecs-many.bin
Walking the database takes ~45 s; benches/peers.sh caches the output in /tmp.
"""
import argparse
import bisect
import collections
import json
import random
import struct
import sys
from array import array

import maxminddb

QNAME = "www.example.test"


def query_wire(net24):
    """DNS query for QNAME A with ECS <net24>/24: what dnsperf -E 8:00011800<3 address bytes> sends."""
    header = struct.pack("!HHHHHH", 0, 0x0100, 1, 0, 0, 1)  # id 0 (dnsperf rewrites it), RD, QD=1, AR=1
    qname = b"".join(bytes([len(l)]) + l.encode() for l in QNAME.split(".")) + b"\0"
    question = qname + struct.pack("!HH", 1, 1)  # A, IN
    ecs = struct.pack("!HBB", 1, 24, 0) + struct.pack("!I", net24)[:3]  # family 1, source /24, scope 0
    option = struct.pack("!HH", 8, len(ecs)) + ecs  # option code 8 = ECS
    # OPT RR: root name, type 41, class = UDP payload 4096, TTL 0 (ext-rcode, version 0, no DO)
    opt = b"\0" + struct.pack("!HHIH", 41, 4096, 0, len(option)) + option
    return header + question + opt


def candidates(db_path):
    """country code -> (array of first /24 index, array of cumulative /24 counts), plus metadata."""
    starts = collections.defaultdict(lambda: array("I"))
    counts = collections.defaultdict(lambda: array("I"))
    continent = {}
    with maxminddb.open_database(db_path) as reader:
        build = reader.metadata().build_epoch
        for net, rec in reader:  # the reader walks the IPv4 subtree once, as IPv4Network
            if net.version != 4 or not rec:
                continue
            cc = (rec.get("country") or {}).get("iso_code")
            loc = rec.get("location") or {}
            if not cc or loc.get("latitude") is None:
                continue  # not located in a country: a GSLB server could only guess
            first = int(net.network_address)
            if net.prefixlen <= 24:
                n = 1 << (24 - net.prefixlen)
            elif first & 0xFF == 0:
                n = 1  # a /25../32 that starts at x.y.z.0 decides where x.y.z.0/24 is
            else:
                continue
            starts[cc].append(first >> 8)
            counts[cc].append(n)
            continent.setdefault(cc, (rec.get("continent") or {}).get("code"))
    cum = {}
    for cc in starts:
        c, t = array("Q"), 0
        for n in counts[cc]:
            t += n
            c.append(t)
        cum[cc] = c
    return starts, cum, continent, build


def fair_shares(sizes, total):
    """Split `total` over countries as evenly as possible, capped by each country's size."""
    shares, left = {}, total
    order = sorted(sizes, key=lambda cc: (sizes[cc], cc))  # smallest first: they cap out first
    for i, cc in enumerate(order):
        share = -(-left // (len(order) - i))  # ceil: remainder goes to the large countries
        shares[cc] = min(sizes[cc], share)
        left -= shares[cc]
    return shares


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="GeoLite2-City mmdb (the one the harness serves from)")
    ap.add_argument("--out", required=True, help="binary query file for dnsperf -B")
    ap.add_argument("--count", type=int, default=50000, help="number of queries = distinct /24s [50000]")
    ap.add_argument("--seed", type=int, default=20240601, help="random seed [20240601]")
    a = ap.parse_args()

    starts, cum, continent, build = candidates(a.db)
    sizes = {cc: cum[cc][-1] for cc in cum}
    if sum(sizes.values()) < a.count:
        sys.exit(f"only {sum(sizes.values())} candidate /24s in {a.db}, fewer than --count {a.count}")
    shares = fair_shares(sizes, a.count)

    rng = random.Random(a.seed)
    picked = []  # (/24 index, country)
    for cc in sorted(shares):  # sorted: the draw order, and so the output, does not depend on the walk
        for k in rng.sample(range(sizes[cc]), shares[cc]):  # distinct k-th candidate /24 of cc
            i = bisect.bisect_right(cum[cc], k)  # range i holds candidate k
            before = cum[cc][i - 1] if i else 0
            picked.append((starts[cc][i] + (k - before), cc))
    rng.shuffle(picked)
    assert len({n for n, _ in picked}) == len(picked) == a.count, "the /24s must be distinct"

    with open(a.out, "wb") as f:
        for n24, _ in picked:
            w = query_wire(n24 << 8)
            f.write(struct.pack("!H", len(w)) + w)

    per_cc = collections.Counter(cc for _, cc in picked)
    per_cont = collections.Counter(continent[cc] for _, cc in picked)
    meta = {"queries": len(picked), "distinct_24s": len(picked), "countries": len(per_cc),
            "seed": a.seed, "db": a.db, "db_build_epoch": build, "qname": QNAME,
            "per_continent": dict(sorted(per_cont.items(), key=lambda x: str(x[0]))),
            "min_per_country": min(per_cc.values()), "max_per_country": max(per_cc.values())}
    with open(a.out + ".json", "w") as f:
        json.dump(meta, f, indent=1)
    print(f"wrote {len(picked)} queries ({len(per_cc)} countries, {meta['min_per_country']}-"
          f"{meta['max_per_country']} /24s each; per continent {meta['per_continent']}) to {a.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
