#!/usr/bin/env bash
# Try `ami` locally: starts the AWS emulator, seeds an account with images, and walks them
# through the verbs that exist so far. Nothing touches real AWS.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ -z "${AMI_EMULATOR_ENDPOINT:-}" ]]; then
  # Re-enter with the emulator running; it is stopped afterwards if this started it.
  exec scripts/emulator.sh run "$0" "$@"
fi

echo "== building ami" >&2
cargo build --quiet --locked
ami="$root/target/debug/ami"

# A demo account of its own on the emulator (an access key ending in 12 digits selects it).
AWS_ACCESS_KEY_ID="$(printf 'AKIATEST%012d' "$(date +%s)")"
export AWS_ACCESS_KEY_ID
export AWS_SECRET_ACCESS_KEY=demo-secret
export AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="$AMI_EMULATOR_ENDPOINT"
export AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

run() {
  echo
  echo "\$ $*"
  "$@"
}

echo "== seeding the emulator (account ${AWS_ACCESS_KEY_ID#AKIATEST}) with three images" >&2
.emulator/venv/bin/python scripts/demo_seed.py

run "$ami" list
run "$ami" list --tag app=web
run "$ami" list --name 'legacy-*' --output json
run "$ami" list --region us-east-1 --region eu-west-1

# Retire the images: the plan first, then for real. The db image shares its root snapshot with a
# disabled image, so that snapshot stays; the legacy bundle's unrelated neighbour stays too.
ids=$("$ami" list --output json | .emulator/venv/bin/python -c \
  'import json,sys; print(" ".join(i["image_id"] for i in json.load(sys.stdin)["images"] if i["state"] != "disabled"))')
# shellcheck disable=SC2086
run "$ami" deregister $ids --cleanup --dry-run
# shellcheck disable=SC2086
run "$ami" deregister $ids --cleanup --yes
run "$ami" list
