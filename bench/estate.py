"""Builds a benchmark estate in one emulator account, through the EC2 API like any client.

  python estate.py ENDPOINT ACCOUNT IMAGES FAMILIES [CONSUMER]

Realistic shape: IMAGES images in FAMILIES name families, dated over the past two years (oldest
first), about 15% with a data volume, about 5% sharing their root snapshot with the previous
image of the family, and a few in use (one instance per family, on an old image). With CONSUMER
(an account id), 10% of the images are shared with that account, which runs an instance of the
first shared image of each family. Prints a JSON summary on stdout.
"""

import json
import sys
import urllib.request
from datetime import datetime, timedelta, timezone

import boto3

endpoint, account, total, families = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
consumer = sys.argv[5] if len(sys.argv) > 5 else None
ec2 = boto3.client(
    "ec2",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=f"AKIATEST{account}",
    aws_secret_access_key="bench",
)


def admin(path, body):
    request = urllib.request.Request(
        endpoint + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request).read()


volume = ec2.create_volume(Size=8, AvailabilityZone="us-east-1a")["VolumeId"]
data_volume = ec2.create_volume(Size=50, AvailabilityZone="us-east-1a")["VolumeId"]
now = datetime.now(timezone.utc)
per_family = total // families
images, in_use, shared, with_data = [], [], 0, 0
shared_with, used_by_consumer = [], []
consumer_ec2 = (
    boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=f"AKIATEST{consumer}",
        aws_secret_access_key="bench",
    )
    if consumer
    else None
)
for family in range(families):
    previous_root = None
    for n in range(per_family):
        index = family * per_family + n
        if previous_root and index % 20 == 7:
            root = previous_root
            shared += 1
        else:
            root = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        mappings = [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": root}}]
        if index % 7 == 3:
            data = ec2.create_snapshot(VolumeId=data_volume)["SnapshotId"]
            mappings.append({"DeviceName": "/dev/xvdb", "Ebs": {"SnapshotId": data}})
            with_data += 1
        created = now - timedelta(days=730) + timedelta(days=730 * n / per_family)
        name = f"fam{family:02d}-{created:%Y%m%d%H%M%S}-{n:04d}"
        image = ec2.register_image(
            Name=name, RootDeviceName="/dev/xvda", BlockDeviceMappings=mappings
        )["ImageId"]
        admin(
            "/_emulator/backdate",
            {"account": account, "region": "us-east-1", "resource_id": image, "time": created.isoformat()},
        )
        images.append(image)
        previous_root = root
        if consumer and index % 10 == 5:
            ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"UserId": consumer}]})
            shared_with.append(image)
            if n < 10:
                consumer_ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)
                used_by_consumer.append(image)
        if n == per_family // 3:
            ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)
            in_use.append(image)

print(json.dumps({"images": len(images), "families": families, "in_use": len(in_use),
                  "shared_root": shared, "with_data_volume": with_data,
                  "shared_with_consumer": len(shared_with), "used_by_consumer": len(used_by_consumer)}))
