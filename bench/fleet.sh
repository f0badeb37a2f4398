#!/usr/bin/env bash
# Benchmark: one run across many accounts costs what its slowest account costs. N accounts (1, 4,
# 16, 64), each with 3 families of 4 images, every request of every account delayed by a round
# trip (BENCH_LATENCY_MS, default 300: a far region or a slow link); `ami cleanup --accounts ...
# --role-name Admin --keep 2 --yes` across them. Reported: wall time, wall(N) / wall(1), requests,
# and the peak resident memory of `ami` (GNU time's maximum resident set size).
#
#   bench/fleet.sh [N...]                 default: 1 4 16 64
#   BENCH_LATENCY_MS=300 bench/fleet.sh 16
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
counts=("$@")
[[ ${#counts[@]} -gt 0 ]] || counts=(1 4 16 64)
latency="${BENCH_LATENCY_MS:-300}"

admin() { "$py" - "$ep" "$@" <<'PY'
import sys, urllib.request
ep, path, body = sys.argv[1], sys.argv[2], sys.argv[3]
urllib.request.urlopen(urllib.request.Request(ep + path, data=body.encode(), method="POST")).read()
PY
}
requests() { "$py" - "$ep" "$@" <<'PY'
import json, sys, urllib.request
ep, accounts = sys.argv[1], sys.argv[2:]
print(sum(sum(json.load(urllib.request.urlopen(f"{ep}/_emulator/requests?account={a}")).values()) for a in accounts))
PY
}

echo "| accounts | wall (s) | wall / wall(1) | requests | peak memory (MiB) | result |"
echo "|---|---|---|---|---|---|"
base_wall=""
for n in "${counts[@]}"; do
  caller="$(new_account 7)"
  ids=()
  for i in $(seq 1 "$n"); do
    id="$(new_account "$i")"
    "$py" bench/estate.py "$ep" "$id" 12 3 >/dev/null
    admin "/_emulator/requests/reset?account=$id" '{}'
    admin /_emulator/config "{\"account\": \"$id\", \"latency_ms\": $latency}"
    ids+=("$id")
  done
  admin /_emulator/config "{\"account\": \"$caller\", \"latency_ms\": $latency}"
  list=$(IFS=,; echo "${ids[*]}")
  export AMI_EC2_RATE_SCALE=100
  export AWS_ACCESS_KEY_ID="AKIATEST$caller" AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
    AWS_ENDPOINT_URL="$ep" AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null \
    AWS_SHARED_CREDENTIALS_FILE=/dev/null
  start=$(now)
  /usr/bin/time -f '%M' -o "$work/rss" "$ami" cleanup --accounts "$list" --role-name Admin \
    --keep 2 --yes --output json >"$work/result.json" 2>"$work/summary.txt" || true
  end=$(now)
  wall=$("$py" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$end")
  [[ -n "$base_wall" ]] || base_wall="$wall"
  ratio=$("$py" -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$wall" "$base_wall")
  rss=$(( $(tail -1 "$work/rss") / 1024 ))
  summary=$("$py" - "$work/result.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
accounts = doc["accounts"]
failed = sum(1 for a in accounts if a["error"])
retired = sum(
    sum(1 for i in (r.get("retire") or {}).get("images", []) if i["status"] == "done")
    for a in accounts if a["result"] for r in a["result"]["regions"]
)
print(f"{len(accounts)} accounts, {failed} failed, {retired} images retired")
PY
)
  echo "| $n | $wall | $ratio | $(requests "${ids[@]}" "$caller") | $rss | $summary |"
done
