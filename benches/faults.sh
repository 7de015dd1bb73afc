#!/usr/bin/env bash
# The fault-injection run (issue 16): a three-member etcd, three signpost
# nodes, real HTTP load balancers and a steady query load on every node;
# faults injected one after another (and some at once), each followed by a
# check of what must hold, then the whole recorded history checked. Prints
# the table of what was injected against what held, as docs/reliability.md
# quotes it. Needs etcd (apt-get install etcd-server).
#
#   benches/faults.sh            # 5 rounds of every fault
#   ROUNDS=1 benches/faults.sh   # the short run the test suite does
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-5}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "# $(date -u +%Y-%m-%d) $(git rev-parse --short HEAD 2>/dev/null || echo '?'): ${rounds} rounds"
if SIGNPOST_FAULT_ROUNDS="$rounds" cargo test --locked --test faults -- --nocapture >"$log" 2>&1; then
  status=0
else
  status=$?
fi
# the table, and the whole-run counts
sed -n '/^| injected |/,/^$/p' "$log"
grep -E 'test result' "$log" || tail -20 "$log"
exit "$status"
