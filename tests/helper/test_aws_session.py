"""aws.Clients' own Session over a botocore session (no boto3 import on the
light paths): its S3 client still has boto3's managed transfers, over HTTP
against the moto server. Not among the recorded-call modules: it loads no
config, so there is no policy its calls could be checked against."""

import uuid

import boto3

from mltp.aws import Clients

REGION = "ap-northeast-2"


def test_s3_clients_have_boto3s_transfer_methods(aws_env, tmp_path):
    """Clients come from a botocore session (aws.Session): their S3 client still
    uploads and downloads files like a boto3 one (cache_index.py, resume.py)."""
    bucket = f"mltp-bkt-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", region_name=REGION, endpoint_url=aws_env).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    source, copy = tmp_path / "a.bin", tmp_path / "b.bin"
    source.write_bytes(b"x" * 1000)
    clients = Clients(REGION, aws_env)
    clients.s3.upload_file(str(source), bucket, "a.bin")
    clients.s3.download_file(bucket, "a.bin", str(copy))
    assert copy.read_bytes() == source.read_bytes()
