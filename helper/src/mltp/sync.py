"""`mltp sync`: put the code bundle under its content-addressed S3 prefix.

The prefix `<prefix>/<name>/code/<hash>/` is immutable: same content, same
hash, same prefix. So a repeated sync costs one HEAD on manifest.json and uploads
nothing; that makes `sync` cheap enough to run on every build. manifest.json is
written last, after every other object has landed, so a prefix without one (an
interrupted upload) is never used by `start` and is simply uploaded again.

Layout under the prefix:
  src/<relpath>      each file, for processing jobs (ExecutionInput.CodeS3Uri)
  sourcedir.tar.gz   the same files, for the training job (SourceDirS3Uri)
  manifest.json      files with sizes and sha256, the hash, the mltp version
"""

import contextlib
import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import botocore.exceptions

from . import bundle as bundle_mod
from . import naming
from .aws import Clients, error_code, refused
from .config import Config, display
from .errors import AwsRefused, InvalidInput
from .repo import RepoFile

# botocore keeps 10 connections per client by default (aws.Clients does not
# change that); more threads than connections would only queue and churn them.
MAX_CONCURRENCY = 10
_SPOOL_LIMIT = 32 * 1024 * 1024  # the tarball stays in memory below this


@dataclass(frozen=True)
class SyncResult:
    content_hash: str
    uri: str  # s3://<bucket>/<prefix>/<name>/code/<hash>/
    uploaded: bool  # False: the prefix was complete already
    files: int
    bytes: int

    def summary(self) -> str:
        if not self.uploaded:
            return f"sync: unchanged, {self.uri} is complete"
        return f"sync: uploaded {self.files} files ({human_size(self.bytes)}) to {self.uri}"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def code_uri(config: Config, content_hash: str) -> str:
    return f"s3://{config.aws.bucket}/{naming.code_prefix(config, content_hash)}"


def owner_args(clients: Clients) -> dict:
    """ExpectedBucketOwner on every call: a bucket of that name in someone else's
    account (a typo, a deleted-and-recreated name) is refused instead of used."""
    account = clients.account_id()
    return {"ExpectedBucketOwner": account} if account else {}


def put_args(config: Config, clients: Clients) -> dict:
    args = owner_args(clients)
    if config.aws.kms_key_id:
        args.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=config.aws.kms_key_id)
    return args


@contextlib.contextmanager
def _s3_errors(config: Config, action: str, uri: str) -> Iterator[None]:
    """refused(), with a plainer message for the common case of a wrong bucket name."""
    with refused(action, uri):
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "NoSuchBucket":
                raise AwsRefused(
                    f"{action} {uri}: bucket '{config.aws.bucket}' does not exist "
                    f"(aws.bucket in {display(config.path)}; create it or fix the name)"
                )
            raise


def is_complete(config: Config, clients: Clients, content_hash: str) -> bool:
    """One HEAD on manifest.json. 404 means absent; so does 403, which S3 answers
    for a missing key when the caller may not list the bucket: uploading again is
    harmless, and a real refusal then shows on the upload, with its reason."""
    key = naming.code_prefix(config, content_hash) + bundle_mod.MANIFEST
    uri = f"s3://{config.aws.bucket}/{key}"
    with _s3_errors(config, "check", uri):
        try:
            clients.s3.head_object(Bucket=config.aws.bucket, Key=key, **owner_args(clients))
            return True
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound", "403", "AccessDenied", "Forbidden"):
                return False
            raise


def _transfer_config(files: int):
    from boto3.s3.transfer import TransferConfig  # only uploads need it: keeps a no-op sync lean

    options = dict(max_concurrency=max(1, min(MAX_CONCURRENCY, files)), use_threads=True)
    try:  # the classic (pure Python) manager: it honours endpoint_url and our retry config
        return TransferConfig(preferred_transfer_client="classic", **options)
    except TypeError:  # boto3 older than the CRT switch
        return TransferConfig(**options)


def upload(config: Config, clients: Clients, bundle: bundle_mod.Bundle) -> None:
    """Every object of the prefix, concurrently, then manifest.json alone."""
    bucket = config.aws.bucket
    prefix = naming.code_prefix(config, bundle.content_hash)
    uri = f"s3://{bucket}/{prefix}"
    args = put_args(config, clients)
    from boto3.s3.transfer import create_transfer_manager

    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_LIMIT) as tarball:
        bundle_mod.write_tarball(bundle, tarball)
        tar_size = tarball.tell()
        tarball.seek(0)
        tar_sha = hashlib.sha256(tarball.read()).hexdigest()
        tarball.seek(0)
        with _s3_errors(config, "upload to", uri):
            with create_transfer_manager(clients.s3, _transfer_config(len(bundle.files) + 1)) as manager:
                futures = [
                    manager.upload(tarball, bucket, prefix + bundle_mod.TARBALL,
                                   extra_args={**args, "ContentType": "application/gzip"})
                ]
                futures += [
                    manager.upload(f.path, bucket, f"{prefix}src/{f.relpath}", extra_args=dict(args))
                    for f in bundle.files
                ]
                for future in futures:
                    future.result()  # the first failure cancels the rest (on leaving the manager)
            _check_unchanged(bundle)
            manifest = bundle.manifest(tar_sha, tar_size)
            clients.s3.put_object(
                Bucket=bucket,
                Key=prefix + bundle_mod.MANIFEST,
                Body=(json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8"),
                ContentType="application/json",
                **args,
            )


def _check_unchanged(bundle: bundle_mod.Bundle) -> None:
    """The prefix is named by the hash taken before the upload; if a file changed
    meanwhile, writing the manifest would seal content that does not match its
    name, forever. Without a manifest the next sync simply uploads again."""
    files = [RepoFile(f.relpath, Path(f.path), f.size) for f in bundle.files]
    if bundle_mod.make(files).content_hash != bundle.content_hash:
        raise InvalidInput("the model repo changed while `mltp sync` was uploading it; run it again")


def sync(config: Config, clients: Clients, files: Sequence[RepoFile],
         bundle: Optional[bundle_mod.Bundle] = None) -> SyncResult:
    """Upload the bundle unless its prefix is complete already."""
    bundle = bundle or bundle_mod.make(files)
    uri = code_uri(config, bundle.content_hash)
    if is_complete(config, clients, bundle.content_hash):
        return SyncResult(bundle.content_hash, uri, False, len(bundle.files), bundle.size)
    upload(config, clients, bundle)
    return SyncResult(bundle.content_hash, uri, True, len(bundle.files), bundle.size)
