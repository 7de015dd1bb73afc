#!/usr/bin/env python3
"""Soak: signpost under a steady 20,000 qps for 10 minutes while regions fail and the
configuration reloads. Bounded: every part stops by itself when the run ends.

What runs (all on loopback):
  * signpost `serve`, the binary given by --bin, on a generated configuration: GeoLite2-City,
    four regions of two endpoints each (127.0.11.1-2 ... 127.0.14.1-2), policy geo, HTTP checks
    every 1 s (timeout 500 ms, rise 2, fall 2).
  * eight HTTP load balancers (this script, one thread each) answering GET /health with 200 "ok".
  * dnsperf at a fixed rate (-Q), from many sockets (-c), replaying a binary query file (-B):
    `www.example.test A`, each query with its own EDNS Client Subnet /24 from one of ~250
    countries (benches/gen_ecs_many.py), so every query is a real GeoIP lookup.
  * every --fail-period seconds one region (in turn) fails, and recovers half a period later.
    Odd failures answer 503, even ones close the listener (connection refused).
  * every --reload-period seconds the configuration is rewritten (the TTL and a weight change,
    so every reload builds a new snapshot) and signpost gets SIGHUP. With --db-every N, every
    Nth reload also replaces the GeoIP database file (a new inode: a full recompile).
  * four watchers, one per region, ask `www.example.test A` every 100 ms with an ECS network
    that region serves, and record the addresses answered.
  * a sampler reads signpost's RSS and open descriptors from /proc every 2 s.

It checks, and exits 1 unless all hold:
  * dnsperf lost no query and saw no SERVFAIL (nor any rcode but NOERROR);
  * no watcher answer contains an endpoint of a failed region later than the failover bound
    (fall x interval x 1.1 jitter + timeout + 0.5 s to publish) after the failure began, and
    every watcher answer has an address;
  * a recovered region is answered again within rise x interval x 1.1 + timeout + 0.5 s;
  * every reload succeeded (signpost_config_reloads_total);
  * RSS after the first minute stays within 10% of the RSS at the first minute;
  * the open descriptors after the first minute vary by at most 4.

  benches/soak.sh                      # builds, generates the query file, runs 10 min
  python3 benches/soak.py --bin target/release/signpost --queries Q.bin --db GeoLite2-City.mmdb
"""
import argparse
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

REGIONS = {  # name: (lat, lon, endpoint addresses, a watcher ECS /24 that region serves)
    "us-east": (39.04, -77.49, ["127.0.11.1", "127.0.11.2"], "8.8.8.0"),
    "eu-west": (53.35, -6.26, ["127.0.12.1", "127.0.12.2"], "87.44.0.0"),
    "ap-south": (19.08, 72.88, ["127.0.13.1", "127.0.13.2"], "117.192.0.0"),
    "sa-east": (-23.55, -46.63, ["127.0.14.1", "127.0.14.2"], "200.160.0.0"),
}
INTERVAL, TIMEOUT, FALL, RISE = 1.0, 0.5, 2, 2
BOUND = FALL * INTERVAL * 1.1 + TIMEOUT + 0.5
RECOVERY_BOUND = RISE * INTERVAL * 1.1 + TIMEOUT + 0.5

ZONE = """$ORIGIN example.test.
$TTL 300
@   IN SOA ns1.example.test. hostmaster.example.test. 1 3600 600 604800 60
    IN NS  ns1.example.test.
ns1 IN A   127.0.0.1
"""


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] soak: {msg}", file=sys.stderr, flush=True)


def config(a, dns_port, admin_port, hc_port, variant):
    out = [
        "[server]",
        f'listen = ["127.0.0.1:{dns_port}"]',
        f'admin = "127.0.0.1:{admin_port}"',
        f"workers = {a.workers}",
        "",
        "[geoip]",
        'database = "geo.mmdb"',
        "",
        '[zones."example.test."]',
        'file = "example.test.zone"',
        "",
        "[checks.web]",
        'type = "http"',
        f"port = {hc_port}",
        'path = "/health"',
        f'interval = "{int(INTERVAL * 1000)}ms"',
        f'timeout = "{int(TIMEOUT * 1000)}ms"',
        f"rise = {RISE}",
        f"fall = {FALL}",
        "",
    ]
    for i, (name, (lat, lon, addrs, _)) in enumerate(REGIONS.items()):
        weight = 1 + ((variant + i) % 2)  # changes with every reload
        out += [f"[regions.{name}]", f"location = {{ lat = {lat}, lon = {lon} }}",
                f"weight = {weight}", 'check = "web"',
                "endpoints = [" + ", ".join(f'{{ address = "{x}" }}' for x in addrs) + "]", ""]
    out += ['[services."www.example.test."]',
            "regions = [" + ", ".join(f'"{n}"' for n in REGIONS) + "]",
            'policy = "geo"', f"ttl = {20 + variant % 2}", ""]
    return "\n".join(out)


class LB:
    """One simulated regional load balancer endpoint: GET /health -> 200 ok, or 503, or refused."""

    def __init__(self, addr, port):
        self.addr, self.port, self.mode, self.server, self.thread = addr, port, "ok", None, None
        self.lock = threading.Lock()
        self.listen()

    def listen(self):
        lb = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                code, body = (200, b"ok") if lb.mode == "ok" else (503, b"failing")
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer((self.addr, self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def set(self, mode):
        with self.lock:
            if mode == self.mode:
                return
            if self.mode == "refuse":
                self.listen()
            if mode == "refuse":
                self.server.shutdown()
                self.server.server_close()
            self.mode = mode

    def close(self):
        with self.lock:
            if self.mode != "refuse":
                self.server.shutdown()
                self.server.server_close()


def ecs_query(qid, net):
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    qname = b"".join(bytes([len(x)]) + x.encode() for x in "www.example.test".split(".")) + b"\0"
    ecs = struct.pack("!HBB", 1, 24, 0) + socket.inet_aton(net)[:3]
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0, 4 + len(ecs)) + struct.pack("!HH", 8, len(ecs)) + ecs
    return header + qname + struct.pack("!HH", 1, 1) + opt


def parse_answer(msg):
    """(rcode, [A addresses]) of a response to ecs_query."""
    qd, an = struct.unpack("!HH", msg[4:8])
    rcode = msg[3] & 0xF
    i = 12
    for _ in range(qd):
        while msg[i] != 0:
            i += 1 + msg[i]
        i += 5
    addrs = []
    for _ in range(an):
        if msg[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while msg[i] != 0:
                i += 1 + msg[i]
            i += 1
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[i:i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(msg[i:i + 4]))
        i += rdlen
    return rcode, addrs


def watch(region, net, port, t_end, out):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    qid = random.randrange(65536)
    while time.monotonic() < t_end:
        qid = (qid + 1) & 0xFFFF
        t = time.monotonic()
        try:
            s.sendto(ecs_query(qid, net), ("127.0.0.1", port))
            while True:
                msg, _ = s.recvfrom(4096)
                if struct.unpack("!H", msg[:2])[0] == qid:
                    break
            rcode, addrs = parse_answer(msg)
            out.append((t, rcode, addrs))
        except socket.timeout:
            out.append((t, -1, []))
        time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))


def sample(pid, t0, t_end, out):
    while time.monotonic() < t_end:
        try:
            with open(f"/proc/{pid}/status") as f:
                rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, AttributeError):
            return
        out.append((time.monotonic() - t0, rss, fds))
        time.sleep(2)


def metric_sum(text, name, match=""):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and match in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="signpost binary")
    ap.add_argument("--queries", required=True, help="dnsperf -B query file (benches/gen_ecs_many.py)")
    ap.add_argument("--db", required=True, help="GeoLite2-City.mmdb")
    ap.add_argument("--duration", type=int, default=600, help="seconds [600]")
    ap.add_argument("--qps", type=int, default=20000, help="dnsperf -Q [20000]")
    ap.add_argument("--clients", type=int, default=100, help="dnsperf -c sockets [100]")
    ap.add_argument("--fail-period", type=float, default=30, help="a region fails every ... s [30]")
    ap.add_argument("--reload-period", type=float, default=20, help="SIGHUP every ... s [20]")
    ap.add_argument("--db-every", type=int, default=0, help="every Nth reload replaces the database [0: never]")
    ap.add_argument("--workers", type=int, default=0, help="signpost UDP workers [0: one per core]")
    ap.add_argument("--port", type=int, default=5390, help="DNS port [5390]; admin +1, health checks 18090")
    ap.add_argument("--out", help="write the figures as JSON here")
    a = ap.parse_args()
    dns_port, admin_port, hc_port = a.port, a.port + 1, 18090

    d = tempfile.mkdtemp(prefix="signpost-soak-")
    shutil.copy(a.db, os.path.join(d, "geo.mmdb"))
    with open(os.path.join(d, "example.test.zone"), "w") as f:
        f.write(ZONE)
    cfg = os.path.join(d, "signpost.toml")
    with open(cfg, "w") as f:
        f.write(config(a, dns_port, admin_port, hc_port, 0))
    lbs = {r: [LB(x, hc_port) for x in v[2]] for r, v in REGIONS.items()}

    proc = subprocess.Popen([a.bin, "serve", "--config", cfg], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(d, "signpost.log"), "w"))
    failures, code = [], 1
    try:
        # wait until every watcher network gets its own region's endpoints
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                sys.exit(f"signpost exited: see {d}/signpost.log")
            ok = True
            for r, (_, _, addrs, net) in REGIONS.items():
                got = []
                watch(r, net, dns_port, time.monotonic() + 0.05, got)
                if not got or not set(got[0][2]) <= set(addrs) or not got[0][2]:
                    ok = False
            if ok:
                break
            if time.monotonic() > deadline:
                sys.exit(f"watcher networks do not get their regions' endpoints: see {d}")
            time.sleep(0.5)
        log(f"signpost pid {proc.pid} ready in {d}; {a.duration} s at {a.qps} qps from {a.clients} sockets")

        t0 = time.monotonic()
        t_end = t0 + a.duration
        perf = subprocess.Popen(["dnsperf", "-s", "127.0.0.1", "-p", str(dns_port), "-B", "-d", a.queries,
                                 "-c", str(a.clients), "-Q", str(a.qps), "-l", str(a.duration),
                                 "-t", "2", "-S", "60"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        seen = {r: [] for r in REGIONS}
        samples = []
        threads = [threading.Thread(target=watch, args=(r, REGIONS[r][3], dns_port, t_end, seen[r]))
                   for r in REGIONS]
        threads.append(threading.Thread(target=sample, args=(proc.pid, t0, t_end, samples)))
        for t in threads:
            t.start()

        names = list(REGIONS)
        events = []  # (time, region, "fail"/"recover", mode)
        reloads, n_fail = 0, 0
        next_fail, next_reload = t0 + a.fail_period / 3, t0 + a.reload_period
        failing = None
        while time.monotonic() < t_end - 1:
            now = time.monotonic()
            if now >= next_fail:
                if failing is None:
                    failing = names[n_fail % len(names)]
                    mode = "503" if n_fail % 2 == 0 else "refuse"
                    at = time.monotonic()  # before the listeners are closed
                    for lb in lbs[failing]:
                        lb.set("fail" if mode == "503" else "refuse")
                    events.append((at, failing, "fail", mode))
                    n_fail += 1
                else:
                    for lb in lbs[failing]:
                        lb.set("ok")
                    events.append((time.monotonic(), failing, "recover", ""))
                    failing = None
                next_fail += a.fail_period / 2
            if now >= next_reload:
                reloads += 1
                if a.db_every and reloads % a.db_every == 0:
                    tmp = os.path.join(d, "geo.mmdb.new")
                    shutil.copy(a.db, tmp)
                    os.rename(tmp, os.path.join(d, "geo.mmdb"))
                with open(cfg + ".new", "w") as f:
                    f.write(config(a, dns_port, admin_port, hc_port, reloads))
                os.rename(cfg + ".new", cfg)
                proc.send_signal(signal.SIGHUP)
                next_reload += a.reload_period
            time.sleep(0.05)
        if failing is not None:
            for lb in lbs[failing]:
                lb.set("ok")
            events.append((time.monotonic(), failing, "recover", ""))
        out, _ = perf.communicate(timeout=a.duration + 60)
        for t in threads:
            t.join()
        try:
            with socket.create_connection(("127.0.0.1", admin_port), timeout=5) as c:
                c.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
                metrics = b""
                while chunk := c.recv(65536):
                    metrics += chunk
            metrics = metrics.decode()
        except OSError:
            metrics = ""

        # dnsperf
        def num(pattern):
            m = re.search(pattern, out)
            return int(m.group(1)) if m else None
        sent, completed, lost = num(r"Queries sent:\s+(\d+)"), num(r"Queries completed:\s+(\d+)"), \
            num(r"Queries lost:\s+(\d+)")
        m = re.search(r"Response codes:\s+(.*)", out)
        rcodes = dict((k, int(v)) for k, v in re.findall(r"([A-Z]+) (\d+)", m.group(1))) if m else {}
        qps = re.search(r"Queries per second:\s+([\d.]+)", out)
        if sent is None or lost is None:
            failures.append("dnsperf output not understood:\n" + out)
        elif lost:
            failures.append(f"dnsperf lost {lost} of {sent} queries")
        if set(rcodes) - {"NOERROR"}:
            failures.append(f"rcodes other than NOERROR: {rcodes}")

        # failovers: answers holding a failed region's endpoints after the bound
        failed_spans = []
        for i, (t, r, what, mode) in enumerate(events):
            if what == "fail":
                end = next((e[0] for e in events[i + 1:] if e[1] == r and e[2] == "recover"), t_end)
                failed_spans.append((t, end, r, mode))
        late, failover_times, recovery_times, watcher_errors = [], [], [], 0
        for r, answers in seen.items():
            # no answer, an error rcode, or NOERROR without an address
            watcher_errors += sum(1 for _, rc, x in answers if rc != 0 or not x)
        for (f, rec, r, mode) in failed_spans:
            addrs = set(REGIONS[r][2])
            answers = seen[r]
            bad = []
            for ans in seen.values():
                bad += [(t, x) for t, rc, x in ans if f + BOUND <= t < rec and addrs & set(x)]
            if bad:
                late.append(f"{r} failed ({mode}) at +{f - t0:.1f} s, still answered at "
                            f"+{bad[0][0] - t0:.1f} s: {bad[0][1]}")
            moved = next((t for t, rc, x in answers if t >= f and x and not addrs & set(x)), None)
            if moved is not None and moved < rec:
                failover_times.append(moved - f)
            back = next((t for t, rc, x in answers if t >= rec and addrs & set(x)), None)
            if back is not None:
                recovery_times.append(back - rec)
            # a recovered region must be answered again (rise 2: two passing
            # probes), unless the run ended first
            if rec < t_end - RECOVERY_BOUND - 1 and (back is None or back - rec > RECOVERY_BOUND):
                failures.append(f"{r} recovered at +{rec - t0:.1f} s but was not answered again "
                                f"within {RECOVERY_BOUND:.1f} s")
        failures += late
        if watcher_errors:
            failures.append(f"{watcher_errors} watcher queries got no answer, an error rcode or no address")
        ok_reloads = metric_sum(metrics, "signpost_config_reloads_total", 'result="ok"')
        if not metrics:
            failures.append("the admin API's /metrics could not be read at the end")
        elif ok_reloads < reloads:
            failures.append(f"only {ok_reloads:.0f} of {reloads} reloads succeeded")

        # memory and descriptors after the first minute
        after = [s for s in samples if s[0] >= 60]
        rss60 = after[0][1] if after else None
        if after:
            rss_max, rss_min = max(s[1] for s in after), min(s[1] for s in after)
            fd_max, fd_min = max(s[2] for s in after), min(s[2] for s in after)
            if rss_max > rss60 * 1.10 or rss_min < rss60 * 0.90:
                failures.append(f"RSS not flat: {rss60} kB at 1 min, {rss_min}..{rss_max} kB after")
            if fd_max - fd_min > 4:
                failures.append(f"open descriptors not flat: {fd_min}..{fd_max} after 1 min")
        else:
            failures.append("no RSS samples after the first minute")
            rss_max = rss_min = fd_max = fd_min = None

        figures = {
            "duration_s": a.duration, "qps_target": a.qps, "clients": a.clients, "workers": a.workers,
            "queries_sent": sent, "queries_completed": completed, "queries_lost": lost,
            "qps_achieved": float(qps.group(1)) if qps else None, "rcodes": rcodes,
            "failures_injected": len(failed_spans), "failover_bound_s": round(BOUND, 2),
            "failover_s_max": round(max(failover_times), 2) if failover_times else None,
            "failover_s_median": round(sorted(failover_times)[len(failover_times) // 2], 2)
            if failover_times else None,
            "recovery_s_max": round(max(recovery_times), 2) if recovery_times else None,
            "late_answers": len(late), "watcher_queries": sum(len(v) for v in seen.values()),
            "watcher_errors": watcher_errors,
            "reloads_sent": reloads, "db_replacements": reloads // a.db_every if a.db_every else 0,
            "reloads_ok": metric_sum(metrics, "signpost_config_reloads_total", 'result="ok"'),
            "reloads_failed": metric_sum(metrics, "signpost_config_reloads_total", 'result="error"'),
            "rss_kb_first": samples[0][1] if samples else None, "rss_kb_at_60s": rss60,
            "rss_kb_min_after_60s": rss_min, "rss_kb_max_after_60s": rss_max,
            "rss_kb_last": samples[-1][1] if samples else None,
            "fds_min_after_60s": fd_min, "fds_max_after_60s": fd_max,
            "rss_series_kb": [s[1] for s in samples[::15]],
            "failures": failures,
        }
        print(json.dumps(figures, indent=1))
        if a.out:
            with open(a.out, "w") as f:
                json.dump(figures, f, indent=1)
        print(out, file=sys.stderr)
        if failures:
            log("FAILED:\n  " + "\n  ".join(failures))
        else:
            log("passed")
            code = 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        for v in lbs.values():
            for lb in v:
                lb.close()
        if code == 0:
            shutil.rmtree(d, ignore_errors=True)
        else:
            log(f"kept {d} (signpost.log)")
    sys.exit(code)


if __name__ == "__main__":
    main()
