#!/usr/bin/env bash
# Try `ami` locally: starts the AWS emulator, seeds an account with images, and walks them
# through the verbs that exist so far. Nothing touches real AWS.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/emulator.sh setup
echo "== building ami" >&2
cargo build --quiet --locked
ami="$root/target/debug/ami"

started=""
if ! endpoint="$(scripts/emulator.sh status 2>/dev/null)"; then
  endpoint="$(scripts/emulator.sh start)"
  started=yes
fi
cleanup() { [[ -n "$started" ]] && scripts/emulator.sh stop; }
trap cleanup EXIT

# A demo account of its own on the emulator (an access key ending in 12 digits selects it).
AWS_ACCESS_KEY_ID="$(printf 'AKIATEST%012d' "$(date +%s)")"
export AWS_ACCESS_KEY_ID
export AWS_SECRET_ACCESS_KEY=demo-secret
export AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="$endpoint"
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
