"""The established tools' approach, for comparison: the same keep-2-per-family selection, then
one DeregisterImage and one DeleteSnapshot per snapshot, strictly one call at a time.

  python serial.py ENDPOINT ACCOUNT KEEP

Prints a JSON summary on stdout.
"""

import json
import sys
import time
from collections import defaultdict

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, account, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
ec2 = boto3.client(
    "ec2",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=f"AKIATEST{account}",
    aws_secret_access_key="bench",
    config=Config(retries={"max_attempts": 1}),
)
started = time.monotonic()
images = []
for page in ec2.get_paginator("describe_images").paginate(Owners=["self"]):
    images.extend(page["Images"])
used = set()
for page in ec2.get_paginator("describe_instances").paginate():
    for reservation in page["Reservations"]:
        for instance in reservation["Instances"]:
            used.add(instance["ImageId"])
families = defaultdict(list)
for image in images:
    families[image["Name"].split("-")[0]].append(image)
retire = []
for members in families.values():
    members.sort(key=lambda i: i["CreationDate"], reverse=True)
    retire.extend(i for i in members[keep:] if i["ImageId"] not in used)
planned = time.monotonic()
errors = 0
for image in retire:
    ec2.deregister_image(ImageId=image["ImageId"])
    for mapping in image.get("BlockDeviceMappings", []):
        snapshot = mapping.get("Ebs", {}).get("SnapshotId")
        if snapshot:
            try:
                ec2.delete_snapshot(SnapshotId=snapshot)
            except ClientError:
                errors += 1
done = time.monotonic()
print(json.dumps({"retired": len(retire), "plan_seconds": round(planned - started, 2),
                  "execute_seconds": round(done - planned, 2), "errors": errors}))
