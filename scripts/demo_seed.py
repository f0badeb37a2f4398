"""Seeds the demo account: EBS images (one with a data volume, two sharing a snapshot, one of
them disabled), an instance-store image registered from a bundle manifest in S3, and a running
instance to build a new image from. Prints the instance id."""

import os
import time

import boto3

kw = dict(endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
ec2 = boto3.client("ec2", **kw)
s3 = boto3.client("s3", **kw)
stamp = time.strftime("%Y%m%d%H%M%S")


def snapshot(client, size):
    volume = client.create_volume(Size=size, AvailabilityZone=client.meta.region_name + "a")
    return client.create_snapshot(VolumeId=volume["VolumeId"])["SnapshotId"]


root, data = snapshot(ec2, 8), snapshot(ec2, 50)
web = ec2.register_image(
    Name=f"web-{stamp}",
    RootDeviceName="/dev/xvda",
    BlockDeviceMappings=[
        {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": root}},
        {"DeviceName": "/dev/xvdb", "Ebs": {"SnapshotId": data}},
    ],
    TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "app", "Value": "web"}]}],
)["ImageId"]
ec2.modify_image_attribute(ImageId=web, LaunchPermission={"Add": [{"UserId": "210987654321"}]})
db_root = snapshot(ec2, 20)
ec2.register_image(
    Name=f"db-{stamp}",
    RootDeviceName="/dev/xvda",
    BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": db_root}}],
    TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "app", "Value": "db"}]}],
)
old_db = ec2.register_image(
    Name=f"db-old-{stamp}",
    RootDeviceName="/dev/xvda",
    BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": db_root}}],
)["ImageId"]
ec2.disable_image(ImageId=old_db)
bucket = f"demo-bundles-{stamp}"
s3.create_bucket(Bucket=bucket)
manifest = "legacy/image.manifest.xml"
s3.put_object(
    Bucket=bucket,
    Key=manifest,
    Body=b"<manifest><image><parts count='1'><part index='0'><filename>image.part.00</filename>"
    b"</part></parts></image></manifest>",
)
s3.put_object(Bucket=bucket, Key="legacy/image.part.00", Body=b"\0" * 1024)
s3.put_object(Bucket=bucket, Key="legacy/README.txt", Body=b"not part of the bundle")
ec2.register_image(Name=f"legacy-{stamp}", ImageLocation=f"{bucket}/{manifest}")

# A build instance to image: the walkthrough starts from it.
instance = ec2.run_instances(ImageId=web, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
print(instance)
