#!/usr/bin/env bash
# Benchmark: `ami cleanup --keep 2` (dry run, then for real) against the serial one-call-at-a-time
# approach of established tools, on identical estates in the emulator. Reports requests by action
# (the emulator's counters) and wall times. 10% of `ami`'s images are shared with a consumer
# account (which runs one per family): the real run makes an image usage report for each shared
# candidate; the dry run makes none (a report is a write) and keeps those images.
#
#   bench/run.sh [SIZE...]        default: 300 3000 (10 and 30 families)
#   BENCH_LATENCY_MS=25 bench/run.sh    add a network round trip to every request (default 0)
#   BENCH_CLEANUP_ARGS=--ignore-consumers bench/run.sh    extra flags for `ami cleanup`
#
# The emulator is single-threaded and spends ~6 ms per mutating call, so on loopback requests and
# server time dominate and concurrency cannot help; with a realistic round trip added (as to a
# real AWS endpoint) the concurrent client overlaps it and the serial one cannot. `ami` runs as
# the dev build the tests use.
#
# The emulator here has no request budget (bench/budget.sh models AWS's), so `ami` is told its
# account's limits are raised far enough not to pace (AMI_EC2_RATE_SCALE, as the tests do): the
# serial baseline is not paced either. Set AMI_EC2_RATE_SCALE=1 to see AWS's default pacing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export AMI_EC2_RATE_SCALE="${AMI_EC2_RATE_SCALE:-1000}"
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(300 3000)

counters() { # account → "total action=n ..." sorted by count
  "$py" - "$ep" "$1" <<'PY'
import json, sys, urllib.request
counts = json.load(urllib.request.urlopen(f"{sys.argv[1]}/_emulator/requests?account={sys.argv[2]}"))
total = sum(counts.values())
detail = ", ".join(f"{k.split(':')[1]} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
print(f"{total} ({detail})")
PY
}
reset() { "$py" -c "import urllib.request,sys; urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=b'{}', method='POST'))" "$ep/_emulator/requests/reset?account=$1"; }
seconds() { "$py" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

echo "| images | latency | run | wall (s) | requests |"
echo "|---|---|---|---|---|"
for size in "${sizes[@]}"; do
  families=$(( size >= 3000 ? 30 : 10 ))
  ours="$(new_account)"
  theirs="$(new_account 1)"
  consumer="$(new_account 2)"
  estate=$("$py" bench/estate.py "$ep" "$ours" "$size" "$families" "$consumer")
  "$py" bench/estate.py "$ep" "$theirs" "$size" "$families" >/dev/null
  echo "estate $size: $estate; latency ${BENCH_LATENCY_MS:-0} ms" >&2
  for account in "$ours" "$theirs"; do
    "$py" -c "import json,sys,urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1] + '/_emulator/config', data=json.dumps({'account': sys.argv[2], 'latency_ms': int(sys.argv[3])}).encode()))" \
      "$ep" "$account" "${BENCH_LATENCY_MS:-0}"
  done

  export AWS_ACCESS_KEY_ID="AKIATEST$ours" AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
    AWS_ENDPOINT_URL="$ep" AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null \
    AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_MAX_ATTEMPTS=1
  reset "$ours"
  start=$(now)
  "$ami" cleanup --keep 2 ${BENCH_CLEANUP_ARGS:-} --dry-run --output json >"$work/plan.json"
  end=$(now)
  planned=$("$py" -c "import json,sys; d=json.load(open(sys.argv[1])); print(sum(1 for r in d['regions'] for x in r['decisions'] if x['verdict']=='retire'))" "$work/plan.json")
  echo "| $size | ${BENCH_LATENCY_MS:-0} ms | ami dry run (plans $planned retirements) | $(seconds "$start" "$end") | $(counters "$ours") |"

  reset "$ours"
  start=$(now)
  "$ami" cleanup --keep 2 ${BENCH_CLEANUP_ARGS:-} --yes --output json >"$work/result.json" 2>"$work/summary.txt"
  end=$(now)
  echo "| $size | ${BENCH_LATENCY_MS:-0} ms | ami cleanup: $(cat "$work/summary.txt" | sed 's/^ami cleanup: //') | $(seconds "$start" "$end") | $(counters "$ours") |"

  reset "$theirs"
  serial=$("$py" bench/serial.py "$ep" "$theirs" 2)
  total=$("$py" -c "import json,sys; d=json.loads(sys.argv[1]); print(d['plan_seconds'] + d['execute_seconds'])" "$serial")
  echo "| $size | ${BENCH_LATENCY_MS:-0} ms | serial baseline $serial | $total | $(counters "$theirs") |"
done
