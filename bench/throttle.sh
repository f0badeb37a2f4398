#!/usr/bin/env bash
# Benchmark under EC2-style throttling: mutating calls draw from a token bucket (burst 50, refilled
# at 5 per second: EC2's documented model for mutating actions), refused with RequestLimitExceeded
# when it is empty. A client that adapts its rate finishes close to the floor the bucket sets,
#   floor = (mutating calls - burst) / refill rate,
# with few throttled answers; one that retries blindly piles up errors and backoff.
#
#   bench/throttle.sh [SIZE...]                 default: 300
#   BENCH_BURST=50 BENCH_REFILL=5 bench/throttle.sh 300 3000
#
# `ami cleanup --keep 2 --yes` on the benchmark estate, with `ami`'s default retry settings.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(300)
burst="${BENCH_BURST:-50}"
refill="${BENCH_REFILL:-5}"

echo "| images | burst / refill | wall (s) | floor (s) | wall / floor | mutating calls accepted | throttled answers | failed items |"
echo "|---|---|---|---|---|---|---|---|"
for size in "${sizes[@]}"; do
  families=$(( size >= 3000 ? 30 : 10 ))
  account="$(new_account)"
  "$py" bench/estate.py "$ep" "$account" "$size" "$families" >/dev/null
  "$py" - "$ep" "$account" "$burst" "$refill" <<'PY'
import json, sys, urllib.request
ep, account, burst, refill = sys.argv[1:]
def post(path, body):
    urllib.request.urlopen(urllib.request.Request(ep + path, data=json.dumps(body).encode(), method="POST"))
post(f"/_emulator/requests/reset?account={account}", {})
post("/_emulator/config", {"account": account, "throttle": {"burst": float(burst), "refill_per_second": float(refill)}})
PY
  start=$(date +%s.%N)
  AWS_ACCESS_KEY_ID="AKIATEST$account" AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
    AWS_ENDPOINT_URL="$ep" AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null \
    AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    "$ami" cleanup --keep 2 --yes --output json >"$work/result.json" 2>"$work/summary.txt" || true
  end=$(date +%s.%N)
  "$py" - "$ep" "$account" "$burst" "$refill" "$start" "$end" "$size" "$work/result.json" <<'PY'
import json, sys, urllib.request
ep, account, burst, refill, start, end, size, result = sys.argv[1:]
burst, refill, wall = float(burst), float(refill), float(end) - float(start)
counts = json.load(urllib.request.urlopen(f"{ep}/_emulator/requests?account={account}"))
faults = json.load(urllib.request.urlopen(f"{ep}/_emulator/faults?account={account}"))
throttled = sum(faults.values())
mutating = sum(n for k, n in counts.items()
               if k.startswith("ec2:") and not k.split(":")[1].startswith(("Describe", "Get", "List")))
accepted = mutating - throttled
floor = max(0.0, accepted - burst) / refill
report = json.load(open(result))
failed = sum(1 for r in report["regions"] for kind in ("images", "snapshots")
             for item in (r.get("retire") or {}).get(kind, []) if item["status"] != "done" and item["status"] != "skipped")
ratio = f"{wall / floor:.2f}" if floor else "-"
print(f"| {size} | {burst:g} / {refill:g} per s | {wall:.1f} | {floor:.1f} | {ratio} | {accepted} | {throttled} | {failed} |")
PY
done
