#!/usr/bin/env bash
# Benchmark against EC2's request budget: every EC2 action draws from AWS's published token bucket
# for it (shared EMULATOR.md: DeregisterImage 100 then 5/s, reads 100 then 20/s, ...), with the
# refill rates multiplied by BENCH_COMPRESSION (time compressed: 10 means a 10-minute AWS run takes
# one) and BENCH_LATENCY_MS added to every request (a round trip to a real endpoint).
#
#   bench/budget.sh [SIZE...]                      default: 300 3000
#   BENCH_COMPRESSION=10 BENCH_LATENCY_MS=25 bench/budget.sh 3000
#
# Per size, on the benchmark estate (10% of the images shared with a consumer account that runs
# some): `ami list` against a plain paginated DescribeImages, then `ami cleanup --keep 2 --yes`.
# Reported: wall time; the floor each bucket sets, (calls - capacity) / refill, for the writes and
# for the reads; wall / the larger floor; throttled answers; requests by action.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(300 3000)
compression="${BENCH_COMPRESSION:-10}"
latency="${BENCH_LATENCY_MS:-25}"

admin() { "$py" - "$ep" "$@" <<'PY'
import json, sys, urllib.request
ep, path, body = sys.argv[1], sys.argv[2], sys.argv[3]
urllib.request.urlopen(urllib.request.Request(ep + path, data=body.encode(), method="POST")).read()
PY
}

echo "| images | run | wall (s) | write floor (s) | read floor (s) | wall / floor | throttled | requests |"
echo "|---|---|---|---|---|---|---|---|"
for size in "${sizes[@]}"; do
  families=$(( size >= 3000 ? 30 : 10 ))
  account="$(new_account)"
  consumer="$(new_account 2)"
  estate=$("$py" bench/estate.py "$ep" "$account" "$size" "$families" "$consumer")
  echo "estate $size: $estate; compression ${compression}x, latency ${latency} ms" >&2
  # The compressed buckets are, to the client, an account with raised limits.
  export AMI_EC2_RATE_SCALE="$compression"
  export AWS_ACCESS_KEY_ID="AKIATEST$account" AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
    AWS_ENDPOINT_URL="$ep" AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null \
    AWS_SHARED_CREDENTIALS_FILE=/dev/null

  for run in list describe cleanup; do
    admin "/_emulator/requests/reset?account=$account" '{}'
    # A fresh budget for each run: the buckets start full.
    admin /_emulator/config "{\"account\": \"$account\", \"latency_ms\": $latency,
      \"throttle\": {\"model\": \"ec2\", \"compression\": $compression}}"
    # Fault counters run on: remember where they stand.
    "$py" -c "import sys,urllib.request; open(sys.argv[3],'wb').write(urllib.request.urlopen(sys.argv[1] + '/_emulator/faults?account=' + sys.argv[2]).read())" \
      "$ep" "$account" "$work/faults-before.json"
    start=$(now)
    case "$run" in
      cleanup) "$ami" cleanup --keep 2 --yes --output json >"$work/result.json" 2>"$work/summary.txt" || true ;;
      list) "$ami" list --output json >"$work/list.json" ;;
      describe) "$py" - <<'PY'
import os, boto3
ec2 = boto3.client("ec2", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
n = sum(len(page["Images"]) for page in ec2.get_paginator("describe_images").paginate(
    Owners=["self"], IncludeDisabled=True, IncludeDeprecated=True, PaginationConfig={"PageSize": 1000}))
PY
      ;;
    esac
    end=$(now)
    "$py" - "$ep" "$account" "$start" "$end" "$size" "$run" "$compression" "$work" <<'PY'
import json, sys, urllib.request
sys.path.insert(0, "tests/emulator")
from faults import EC2_BUCKETS, READ_PREFIXES, ec2_bucket
ep, account, start, end, size, run, compression, work = sys.argv[1:]
wall, compression = float(end) - float(start), float(compression)
counts = json.load(urllib.request.urlopen(f"{ep}/_emulator/requests?account={account}"))
after = json.load(urllib.request.urlopen(f"{ep}/_emulator/faults?account={account}"))
before = json.load(open(f"{work}/faults-before.json"))
faults = {k: n - before.get(k, 0) for k, n in after.items()}
throttled = sum(n for k, n in faults.items() if k.endswith(":throttle"))
# Calls each bucket accepted (throttled answers took no token).
drawn = {}
for key, n in counts.items():
    service, _, name = key.partition(":")
    if service != "ec2":
        continue
    refused = faults.get(f"{key}:throttle", 0)
    # Reads are counted as filtered (the smaller unfiltered bucket applies only without filters).
    bucket = ec2_bucket(name.removesuffix("(DryRun)"), {"Filter.1.Name": ["x"]})
    drawn[bucket] = drawn.get(bucket, 0) + n - refused
floors = {b: max(0.0, n - EC2_BUCKETS[b][0]) / (EC2_BUCKETS[b][1] * compression) for b, n in drawn.items()}
write = max([f for b, f in floors.items() if not b.startswith("describe")] or [0.0])
read = max([f for b, f in floors.items() if b.startswith("describe")] or [0.0])
floor = max(write, read)
detail = ", ".join(f"{k.split(':')[1]} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
label = run
if run == "cleanup":
    summary = open(f"{work}/summary.txt").read().strip().splitlines()
    label = "ami cleanup --keep 2 --yes: " + (summary[-1].replace("ami cleanup: ", "") if summary else "?")
elif run == "list":
    label = "ami list"
else:
    label = "plain paginated DescribeImages (boto3)"
ratio = f"{wall / floor:.2f}" if floor > 0 else "-"
print(f"| {size} | {label} | {wall:.1f} | {write:.1f} | {read:.1f} | {ratio} | {throttled} | {sum(counts.values())} ({detail}) |")
PY
  done
  admin /_emulator/config "{\"account\": \"$account\", \"throttle\": null, \"latency_ms\": null}"
done
