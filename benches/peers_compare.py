#!/usr/bin/env python3
"""Candidate vs baseline table for one peers-harness results directory (Markdown on stdout).

  python3 benches/peers_compare.py RESULTS_DIR [CANDIDATE [BASELINE]] [--cand-desc TEXT] [--base-desc TEXT]
      CANDIDATE, BASELINE: the two peer names in bench.jsonl [signpost, signpost-base], e.g.
      signpost-hash signpost-weighted; they title the table and its columns.
      --cand-desc/--base-desc: one line each under the title saying what the two ran (policy,
      select, binary); benches/peers.sh passes them.

The harness's summary gives each peer's ratio to NSD. This adds the ratio that matters when
checking a change: the first candidate against the second, from the same run: the current build
against a baseline build, or one build with two configurations (e.g. policy hash vs weighted).
Both took turns within every round, so each round gives one paired ratio of runs minutes apart;
the table shows the median over rounds and the [min-max] of the per-round ratios. For server CPU
per query a ratio below 1 means the candidate uses less CPU than the baseline (better); for qps
above 1 is better. Compare the spread with the NSD-vs-gdnsd numbers of the same run to judge noise.
"""
import argparse
import json
import os
import statistics
import sys


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def span(xs):
    xs = [x for x in xs if x is not None]
    return f"[{min(xs):.3f}-{max(xs):.3f}]" if xs else ""


def f(x, nd):
    return "-" if x is None else f"{x:,.{nd}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results_dir")
    ap.add_argument("cand", nargs="?", default="signpost")
    ap.add_argument("base", nargs="?", default="signpost-base")
    ap.add_argument("--cand-desc", default="")
    ap.add_argument("--base-desc", default="")
    a = ap.parse_args()
    d, cand, base = a.results_dir, a.cand, a.base
    rows = [json.loads(l) for l in open(os.path.join(d, "bench.jsonl")) if l.strip()]
    if not any(r["peer"] == base for r in rows):
        return 0  # no baseline in this run: nothing to compare
    out = [f"\n### {cand} vs {base} (same run; per-round paired ratios, median [min-max])\n"]
    descs = [x for x in (a.cand_desc, a.base_desc) if x]
    if descs:
        out += [f"- {x}" for x in descs] + [""]
    out += [f"| phase | workload | {cand} us/query | {base} us/query | us/query ratio (<1 = {cand} cheaper)"
           f" | {cand} qps | {base} qps | qps ratio | lost ({cand} / {base}) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for ph in dict.fromkeys(r["phase"] for r in rows):
        for wl in dict.fromkeys(r["workload"] for r in rows if r["phase"] == ph):
            by = {(r["peer"], r["round"]): r for r in rows if r["phase"] == ph and r["workload"] == wl}
            rounds = sorted({rnd for (p, rnd) in by if (cand, rnd) in by and (base, rnd) in by})
            c = [by[(cand, r)] for r in rounds]
            b = [by[(base, r)] for r in rounds]
            us_ratio = [x.get("server_cpu_us_per_q") / y["server_cpu_us_per_q"]
                        if x.get("server_cpu_us_per_q") and y.get("server_cpu_us_per_q") else None
                        for x, y in zip(c, b)]
            q_ratio = [x.get("qps") / y["qps"] if x.get("qps") and y.get("qps") else None
                       for x, y in zip(c, b)]
            out.append(
                f"| {ph} | {wl} | {f(med([x.get('server_cpu_us_per_q') for x in c]), 2)} | "
                f"{f(med([y.get('server_cpu_us_per_q') for y in b]), 2)} | "
                f"{f(med(us_ratio), 3)} {span(us_ratio)} | {f(med([x.get('qps') for x in c]), 0)} | "
                f"{f(med([y.get('qps') for y in b]), 0)} | {f(med(q_ratio), 3)} {span(q_ratio)} | "
                f"{sum(x.get('lost', 0) for x in c):.0f} / {sum(y.get('lost', 0) for y in b):.0f} |")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
