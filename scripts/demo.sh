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
source scripts/cargo-env.sh
cargo build --quiet --locked --tests
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
  local code=0
  "$@" || code=$?
  [[ $code -eq 0 ]] || echo "(exit code $code)"
}

echo "== seeding the emulator (account ${AWS_ACCESS_KEY_ID#AKIATEST}) with images and a build instance" >&2
instance=$(.emulator/venv/bin/python scripts/demo_seed.py)
stamp=$(date +%Y%m%d%H%M%S)
json_field() { .emulator/venv/bin/python -c "import json,sys; print(eval('json.load(sys.stdin)' + sys.argv[1]))" "$1"; }

run "$ami" list

# One image's life: create it from the build instance, smoke-test it, copy it to a second region,
# share it (and its copy) with another account, snapshots included, then retire it and every copy
# with their snapshots.
echo
echo "\$ $ami create --instance-id $instance --name release-$stamp --tag app=web --wait --output json"
image=$("$ami" create --instance-id "$instance" --name "release-$stamp" --tag app=web --wait --output json | json_field '["image_id"]')
echo "created $image"
run "$ami" copy "$image" --to-region eu-west-1 --wait
run "$ami" launch "$image" --terminate-after --check 'echo "smoke test on $AMI_INSTANCE_ID in $AMI_AVAILABILITY_ZONE"'
run "$ami" share "$image" --account 210987654321 --with-snapshots --all-copies
# Where each image came from, as AWS records it: the copy under its source.
run "$ami" list --tree --region us-east-1 --region eu-west-1
# Shared images are retired only once the accounts they are shared with are checked: without a
# role to look with, the plan keeps it and says why; with one, account 210987654321 is checked.
run "$ami" deregister "$image" --cleanup --dry-run
# The image and its copy in every region (found by lineage): one plan, one confirmation.
run "$ami" deregister "$image" --all-copies --cleanup --role-name OrganizationAccountAccessRole --yes

# The older images: the db image's snapshot is shared with a disabled image and stays; the
# legacy bundle goes, its unrelated neighbour in the bucket stays; the web image is in use by the
# build instance, so it is kept and the exit code says 3 (partial).
ids=$("$ami" list --output json | .emulator/venv/bin/python -c \
  'import json,sys; print(" ".join(i["image_id"] for i in json.load(sys.stdin)["images"] if i["state"] != "disabled"))')
# shellcheck disable=SC2086
run "$ami" deregister $ids --cleanup --yes
run "$ami" list --region us-east-1 --region eu-west-1 --shares
