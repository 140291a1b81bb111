"""Files to and from the emulator's S3, one request each.

boto3's `download_file` and `upload_file` (s3transfer) are made for real S3:
a HEAD before every download, a pool of threads set up for every call,
multipart for large files. Against the in-process emulator on loopback that
is most of what moving a job's few small files costs, and every request it
adds is handled by the same process as the run. So a local run moves a file
with one GetObject (streamed to a temporary file beside the target, renamed
into place, as download_file does) or one PutObject; a file too large for
one PutObject on AWS still goes through upload_file.
"""

import os
from pathlib import Path

from .. import owned

CHUNK = 1 << 20
# Above this a file goes up in parts (upload_file), as S3 would need it above 5 GB.
SINGLE_PUT_LIMIT = 256 << 20


def get_file(s3, bucket: str, key: str, dest: str) -> None:
    """The object at `key` into the file `dest` (replaced whole, never half written)."""
    target = Path(dest)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        with owned.replacing(target) as out:
            for chunk in body.iter_chunks(CHUNK):
                out.write(chunk)
    finally:
        body.close()


def put_file(s3, path: str, bucket: str, key: str) -> None:
    """The file at `path` as the object `key`."""
    if os.path.getsize(path) > SINGLE_PUT_LIMIT:
        s3.upload_file(path, bucket, key)
        return
    with open(path, "rb") as body:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
