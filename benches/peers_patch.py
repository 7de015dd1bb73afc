#!/usr/bin/env python3
"""Patch a SCRATCH COPY of the peers harness (never /work/shared/peers itself) for benches/peers.sh.

  python3 benches/peers_patch.py /tmp/signpost-peers.XXXXXX

Why patch at all: the shared harness has exactly one candidate slot and three workloads, and its
signpost adapter always writes `policy = "geo"`. To compare two signpost builds, or one build
with two steering configurations (e.g. policy hash vs weighted), with numbers from ONE run (same
rounds, same noise, taking turns with the other peers) both must be peers of the same bench.py
invocation, each with its own service settings, and the new "ecs-many" workload must run inside
the same rounds so it gets the same CPU sampling and shows up in the same summary. The harness
is shared and read-only, so benches/peers.sh copies it and this script edits the copy.

What it changes (each edit is an exact text replacement that must match exactly once, so a
changed harness makes this script fail loudly instead of producing a half-patched run):
  run-peers.sh
    - a second candidate slot CANDIDATE2_{CMD,NAME,PORT,GSLB} (defaults: empty, candidate2, 5311,
      1), handled wherever the first one is: port_of, start_peer, is_gslb, all_peers,
      stop_peers, and the knobs line of env.txt. Nothing changes while CANDIDATE2_CMD is empty.
    - env.txt also records ECS_MANY_DESC (a description of the ecs-many query file), if set.
  bin/bench.py
    - a 4th workload "ecs-many" when ECS_MANY_FILE is set: `dnsperf -B -d $ECS_MANY_FILE` (prebuilt
      queries, each with its own ECS /24; see benches/gen_ecs_many.py) from ECS_MANY_CLIENTS [100]
      client sockets instead of --clients. Same -l bound, same server CPU sampling, same rounds.
  candidates/signpost.sh (the signpost adapter)
    - the service's `policy` comes from SIGNPOST_POLICY [geo] instead of the fixed "geo", and
      `select = "<SIGNPOST_SELECT>"` is added to [services."www.example.test."] when
      SIGNPOST_SELECT is set and not empty (no select key otherwise, as before). The adapter
      logs the generated service table to its log (run/logs/<name>.out). With ANCHOR_XDP_IFACE
      set (veth-peers.sh with XDP=native|skb) and SIGNPOST_XDP not "0", it adds
      `[server.xdp] interfaces = [ANCHOR_XDP_IFACE], mode = ANCHOR_XDP_MODE` and logs it;
      benches/peers.sh sets SIGNPOST_XDP per candidate (CANDIDATE_XDP, BASELINE_XDP). benches/peers.sh
      puts both variables in front of each candidate's command, so the two candidates can run
      the same binary with different policies (e.g. hash vs weighted). Nothing else in the
      generated signpost.toml changes; with both unset the file is byte for byte as before.
  bin/check.py (`wait`, run after the peers start, in every phase, also with SKIP_CHECK=1)
    - peers named in WAIT_ANY_REGION (benches/peers.sh lists the signpost candidates that run
      with gslb=0, e.g. policy hash or weighted, for which "NA -> us-east, EU -> eu-west,
      AS -> ap-south" does not hold) are waited for as well, until each of those test clients
      gets a NOERROR answer whose A records are all LB addresses; the regions they got are
      logged. If one never does within --timeout, `wait` exits 1 and the run stops, instead of
      benchmarking a candidate that answers SERVFAIL or NODATA. gslb=1 peers are unchanged:
      still the nearest-region expectation, still only a warning when they do not converge.
      Without WAIT_ANY_REGION nothing changes.
  DNSSEC=1 (benches/peers.sh exports it when asked), for the signed workloads of issue 17:
    - bin/bench.py: two more workloads, "plain-do" and "mix-do": the plain and mix query files
      sent with the DO bit (`dnsperf -D`). A signed server answers them with RRSIGs (and compact
      denial for mix's NXDOMAIN names); an unsigned one with the same unsigned answers.
    - candidates/signpost.sh: a `[zones."example.test.".dnssec]` table with the key files in
      SIGNPOST_DNSSEC_KEYS (space-separated absolute paths), when set and not empty
      (benches/peers.sh sets it for the first candidate only).
    - conf/knot/knot.conf: Knot signs online too (`mod-onlinesign` after `mod-geoip`, keys made
      by Knot's default policy, ECDSA P-256), so its plain-do is a signed workload beside ours.
bin/report.py needs no change: it lists whatever peers and workloads bench.jsonl holds. Nor does
the fixed-rate latency parsing: for -B input dnsperf -v prints "> NOERROR binary input 0.000077",
which has the same four fields as "> NOERROR www.example.test A 0.000180".
"""
import os
import sys

TAG = "[patched by signpost benches/peers.sh]"


def patch(path, edits):
    with open(path) as f:
        text = f.read()
    if TAG in text:
        sys.exit(f"{path} is already patched")
    for old, new in edits:
        n = text.count(old)
        if n != 1:
            sys.exit(f"{path}: expected exactly one match, found {n}, for:\n{old}\n"
                     "The shared harness changed; update benches/peers_patch.py.")
        text = text.replace(old, new)
    os.chmod(path, os.stat(path).st_mode | 0o200)  # the copy keeps the shared folder's read-only modes
    with open(path, "w") as f:
        f.write(text)


def patch_run_peers(path):
    patch(path, [
        # the knobs of the second slot, right after the first slot's
        ('\nROUNDS="${ROUNDS:-3}"',
         f'\n# {TAG} a second candidate slot, same contract as the first\n'
         'CANDIDATE2_CMD="${CANDIDATE2_CMD:-}"\n'
         'CANDIDATE2_NAME="${CANDIDATE2_NAME:-candidate2}"\n'
         'CANDIDATE2_PORT="${CANDIDATE2_PORT:-5311}"\n'
         'CANDIDATE2_GSLB="${CANDIDATE2_GSLB:-1}"\n'
         'ROUNDS="${ROUNDS:-3}"'),
        ('for n in nsd gdnsd pdns knot "$CANDIDATE_NAME"; do stop_one',
         'for n in nsd gdnsd pdns knot "$CANDIDATE_NAME" "$CANDIDATE2_NAME"; do stop_one'),
        ('"$CANDIDATE_NAME") echo "$CANDIDATE_PORT";;',
         '"$CANDIDATE_NAME") echo "$CANDIDATE_PORT";; "$CANDIDATE2_NAME") echo "$CANDIDATE2_PORT";;'),
        # start_peer: one branch for both slots; it picks the slot's command by name
        ('    "$CANDIDATE_NAME")\n'
         '      [[ -n $CANDIDATE_CMD ]] || die "CANDIDATE_CMD is empty"\n',
         '    "$CANDIDATE_NAME"|"$CANDIDATE2_NAME")\n'
         '      local ccmd=$CANDIDATE_CMD; [[ $name == "$CANDIDATE_NAME" ]] || ccmd=$CANDIDATE2_CMD\n'
         '      [[ -n $ccmd ]] || die "the candidate command of $name is empty"\n'),
        ('spawn "$name" "$LOGS/$name.out" "${tset[@]}" bash -c "$CANDIDATE_CMD" ;;',
         'spawn "$name" "$LOGS/$name.out" "${tset[@]}" bash -c "$ccmd" ;;'),
        ('( $1 == "$CANDIDATE_NAME" && $CANDIDATE_GSLB == 1 ) ]]',
         '( $1 == "$CANDIDATE_NAME" && $CANDIDATE_GSLB == 1 ) || ( $1 == "$CANDIDATE2_NAME" && $CANDIDATE2_GSLB == 1 ) ]]'),
        # bench.py rotates the starting peer over this list, so both candidates share every round
        ('echo "$PEERS${CANDIDATE_CMD:+ $CANDIDATE_NAME}"',
         'echo "$PEERS${CANDIDATE_CMD:+ $CANDIDATE_NAME}${CANDIDATE2_CMD:+ $CANDIDATE2_NAME}"'),
        ("CANDIDATE='${CANDIDATE_CMD:+$CANDIDATE_NAME:$CANDIDATE_PORT}'",
         "CANDIDATE='${CANDIDATE_CMD:+$CANDIDATE_NAME:$CANDIDATE_PORT}' "
         "CANDIDATE2='${CANDIDATE2_CMD:+$CANDIDATE2_NAME:$CANDIDATE2_PORT}'"),
        ('    "$PY" -m pip list 2>/dev/null',
         f'    [[ -z ${{ECS_MANY_DESC:-}} ]] || echo "ecs-many: $ECS_MANY_DESC"   # {TAG}\n'
         f'    [[ -z ${{SIGNPOST_DESC:-}} ]] || echo "signpost candidates: $SIGNPOST_DESC"   # {TAG}\n'
         '    "$PY" -m pip list 2>/dev/null'),
    ])


def patch_bench(path):
    patch(path, [
        ('        ("mix", mix, []),\n'
         '    ]\n',
         '        ("mix", mix, []),\n'
         '    ]\n'
         f'    # {TAG} many clients, many networks: prebuilt queries (dnsperf -B),\n'
         '    # each with its own ECS /24, sent from ECS_MANY_CLIENTS sockets instead of --clients\n'
         '    wl_clients = {}\n'
         '    if os.environ.get("ECS_MANY_FILE"):\n'
         '        workloads.append(("ecs-many", os.environ["ECS_MANY_FILE"], ["-B"]))\n'
         '        wl_clients["ecs-many"] = int(os.environ.get("ECS_MANY_CLIENTS", "100"))\n'),
        ('"-c", str(a.clients),',
         '"-c", str(wl_clients.get(wl, a.clients)),'),
    ])


def patch_dnssec(d):
    """The signed workloads and signing peers (DNSSEC=1); see the module docstring."""
    edit(os.path.join(d, "bin", "bench.py"), [
        ('    wl_clients = {}\n',
         '    wl_clients = {}\n'
         f'    # {TAG} DNSSEC=1: the plain and mix files again with the DO bit\n'
         '    if os.environ.get("DNSSEC") == "1":\n'
         '        workloads += [("plain-do", plain, ["-D"]), ("mix-do", mix, ["-D"])]\n'),
    ])
    edit(os.path.join(d, "candidates", "signpost.sh"), [
        ("open(f\"{d}/signpost.toml\", \"w\").write(\"\\n\".join(out))\n",
         f"# {TAG} DNSSEC=1: the zone signed with the keys in SIGNPOST_DNSSEC_KEYS\n"
         "if os.environ.get(\"SIGNPOST_DNSSEC_KEYS\"):\n"
         "    keys = os.environ[\"SIGNPOST_DNSSEC_KEYS\"].split()\n"
         "    i = out.index('file = \"example.test.zone\"')\n"
         "    out[i + 1:i + 1] = [\"\", f'[zones.\"{spec[\"zone\"]}.\".dnssec]', \"keys = \" + json.dumps(keys)]\n"
         "open(f\"{d}/signpost.toml\", \"w\").write(\"\\n\".join(out))\n"),
    ])
    edit(os.path.join(d, "conf", "knot", "knot.conf"), [
        ('    module: mod-geoip/www\n',
         f'    # {TAG} DNSSEC=1: signed online, after the geo answer is chosen\n'
         '    module: [ mod-geoip/www, mod-onlinesign ]\n'),
    ])


def edit(path, edits):
    """Exact replacements (each must match once) in a file that may already be patched."""
    with open(path) as f:
        text = f.read()
    for old, new in edits:
        n = text.count(old)
        if n != 1:
            sys.exit(f"{path}: expected exactly one match, found {n}, for:\n{old}")
        text = text.replace(old, new)
    with open(path, "w") as f:
        f.write(text)


def patch_adapter(path):
    patch(path, [
        ('\n: "${SIGNPOST_BIN:?set SIGNPOST_BIN to the signpost binary}"\n',
         '\n: "${SIGNPOST_BIN:?set SIGNPOST_BIN to the signpost binary}"\n'
         f'# {TAG} the service\'s policy from SIGNPOST_POLICY [geo] and its select from\n'
         '# SIGNPOST_SELECT [unset: no select key]; benches/peers.sh sets both per candidate\n'),
        ("        'policy = \"geo\"', f'ttl = {spec[\"ttl\"]}', \"\"]\n",
         f"        # {TAG} policy [geo] and select [none] from the environment\n"
         "        f'policy = {json.dumps(os.environ.get(\"SIGNPOST_POLICY\") or \"geo\")}',\n"
         "        *([f'select = {json.dumps(os.environ[\"SIGNPOST_SELECT\"])}']\n"
         "          if os.environ.get(\"SIGNPOST_SELECT\") else []),\n"
         "        f'ttl = {spec[\"ttl\"]}', \"\"]\n"
         "print(\"signpost.sh: \" + \"; \".join(l for l in out[out.index(f'[services.\"{spec[\"name\"]}.\"]'):] if l),\n"
         "      file=sys.stderr)\n"),
        # the harness's XDP contract (veth-peers.sh with XDP=native|skb hands every process
        # ANCHOR_XDP_IFACE and ANCHOR_XDP_MODE); SIGNPOST_XDP=0 keeps a candidate on sockets
        ("open(f\"{d}/signpost.toml\", \"w\").write(\"\\n\".join(out))\n",
         f"# {TAG} [server.xdp] from ANCHOR_XDP_IFACE/ANCHOR_XDP_MODE unless SIGNPOST_XDP=0\n"
         "if os.environ.get(\"ANCHOR_XDP_IFACE\") and os.environ.get(\"SIGNPOST_XDP\", \"1\") != \"0\":\n"
         "    out += [\"[server.xdp]\", \"interfaces = \" + json.dumps([os.environ[\"ANCHOR_XDP_IFACE\"]]),\n"
         "            \"mode = \" + json.dumps(os.environ.get(\"ANCHOR_XDP_MODE\") or \"native\"), \"\"]\n"
         "    print(\"signpost.sh: \" + \"; \".join(out[-4:-1]), file=sys.stderr)\n"
         "open(f\"{d}/signpost.toml\", \"w\").write(\"\\n\".join(out))\n"),
    ])


def patch_check(path):
    patch(path, [
        ('    peers = [p for p in parse_peers(a.peers) if p["gslb"]]\n',
         f'    # {TAG} peers named in WAIT_ANY_REGION (signpost candidates that\n'
         '    # benches/peers.sh runs with gslb=0, e.g. policy hash or weighted) are waited for too: until\n'
         '    # every test client gets a NOERROR answer whose A records are all LB addresses. If one never\n'
         '    # does, the wait fails (exit 1), so the run stops instead of measuring bad answers.\n'
         '    any_region = set(os.environ.get("WAIT_ANY_REGION", "").split())\n'
         '    lb_addrs = {r["addr"] for r in spec["regions"]}\n'
         '    peers = [p for p in parse_peers(a.peers) if p["gslb"] or p["name"] in any_region]\n'
         '    any_peers = {p["name"] for p in peers if not p["gslb"]}\n'),
        ('            ok = all(query(p["port"], client(spec, c)["subnet"])["addrs"] == [addr] for c, addr in want.items())\n',
         f'            if p["name"] in any_peers:  # {TAG}\n'
         '                got = {c: query(p["port"], client(spec, c)["subnet"]) for c in want}\n'
         '                if all(r["status"] == "NOERROR" and r["addrs"] and set(r["addrs"]) <= lb_addrs\n'
         '                       for r in got.values()):\n'
         '                    pending.discard(p["name"])\n'
         '                    print(f"[wait] {p[\'name\']} answers www A with LB addresses after "\n'
         '                          f"{time.time() - t0:.1f}s: "\n'
         '                          + ", ".join(f"{c} -> {region_of(spec, r[\'addrs\'])}" for c, r in got.items()),\n'
         '                          file=sys.stderr)\n'
         '                continue\n'
         '            ok = all(query(p["port"], client(spec, c)["subnet"])["addrs"] == [addr] for c, addr in want.items())\n'),
        ('did not converge to the expected regions within {a.timeout}s", file=sys.stderr)\n'
         '    return 0\n',
         'did not converge to the expected regions within {a.timeout}s", file=sys.stderr)\n'
         f'    if pending & any_peers:  # {TAG}\n'
         '        print(f"[wait] ERROR: {\', \'.join(sorted(pending & any_peers))} did not answer '
         'www.example.test A with LB addresses within {a.timeout}s", file=sys.stderr)\n'
         '        return 1\n'
         '    return 0\n'),
    ])


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = os.path.abspath(sys.argv[1])
    shared = os.path.realpath(os.environ.get("PEERS_SHARED", "/work/shared/peers"))
    if os.path.realpath(d) == shared:
        sys.exit("refusing to patch the shared harness; patch a copy")
    patch_run_peers(os.path.join(d, "run-peers.sh"))
    patch_bench(os.path.join(d, "bin", "bench.py"))
    patch_adapter(os.path.join(d, "candidates", "signpost.sh"))
    patch_check(os.path.join(d, "bin", "check.py"))
    if os.environ.get("DNSSEC") == "1":
        patch_dnssec(d)


if __name__ == "__main__":
    main()
