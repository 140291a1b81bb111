"""`mltp sync`: put the code bundle under its content-addressed S3 prefix, and
prove that what is there is exactly that bundle.

The prefix `<prefix>/<name>/code/<hash>/` (branches: `.../code/branches/<slug>/<hash>/`)
is named by the content hash, but a name proves nothing about what the prefix
holds: an object can be overwritten or deleted after the upload. So every sync
(and every `start`) verifies the whole prefix against what the local files
make, with one ListObjectsV2 call per 1000 objects:

- every expected object is listed with the expected size;
- its ETag equals the MD5 of the expected bytes, computed locally. S3 reports
  the MD5 as the ETag for objects stored in one part without SSE-KMS, which is
  how `sync` stores them (no multipart: the bundle is at most 500 MiB);
- when the ETag is not an MD5 (aws.kms_key_id, or a bucket whose default
  encryption is SSE-KMS), the object costs one HEAD with ChecksumMode=ENABLED:
  every object is uploaded with ChecksumAlgorithm=SHA256, and S3's full-object
  SHA-256 must equal the local one;
- nothing else is under the prefix (processing jobs download all of `src/`:
  one planted file there would run).

The tarball's digests come from a cache keyed by content hash (see Plan), so a
no-op sync hashes the files but gzips nothing.

What differs is repaired and said: manifest.json is deleted first, the wrong
or missing objects uploaded, unexpected ones deleted, manifest.json written
last. A sync interrupted at any point leaves no manifest, and `start` refuses
a prefix that does not verify, with or without one.

Layout under the prefix:
  src/<relpath>      each file, for processing jobs (ExecutionInput.CodeS3Uri)
  sourcedir.tar.gz   the same files, for the training job (SourceDirS3Uri)
  manifest.json      files with sizes and sha256, the hash, the mltp version
"""

import base64
import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, List, Optional, Sequence, Tuple

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
SINGLE_PART_LIMIT = 5 * 1024 ** 3  # PutObject's own limit; the bundle is at most 500 MiB


@dataclass(frozen=True)
class SyncResult:
    content_hash: str
    uri: str  # s3://<bucket>/<code prefix>
    uploaded: bool  # False: the prefix verified as it was
    files: int
    bytes: int
    repaired: Tuple[str, ...] = ()  # "src/train.py (content differs)", ...: set when a prefix was fixed
    removed: Tuple[str, ...] = ()  # unexpected objects deleted from the prefix

    def summary(self) -> str:
        if not self.uploaded:
            return f"sync: unchanged, {self.uri} is complete and verified"
        if self.repaired or self.removed:
            parts = []
            if self.repaired:
                parts.append(f"replaced {len(self.repaired)} object{'s' if len(self.repaired) != 1 else ''} "
                             f"({_listed(self.repaired)})")
            if self.removed:
                parts.append(f"removed {len(self.removed)} unexpected object{'s' if len(self.removed) != 1 else ''} "
                             f"({_listed(self.removed)})")
            return f"sync: repaired {self.uri}: {'; '.join(parts)}"
        return f"sync: uploaded {self.files} files ({human_size(self.bytes)}) to {self.uri}"


def _listed(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", and {len(items) - limit} more" if len(items) > limit else "")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def code_uri(config: Config, content_hash: str, state_machine: Optional[str] = None) -> str:
    return f"s3://{config.aws.bucket}/{naming.code_prefix(config, content_hash, state_machine)}"


def owner_args(clients: Clients) -> dict:
    """ExpectedBucketOwner on every call: a bucket of that name in someone else's
    account (a typo, a deleted-and-recreated name) is refused instead of used."""
    return {"ExpectedBucketOwner": clients.account_id()}


def put_args(config: Config, clients: Clients) -> dict:
    args = owner_args(clients)
    args["ChecksumAlgorithm"] = "SHA256"
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


# --------------------------------------------------------------------------- what the prefix must hold


@dataclass(frozen=True)
class Expected:
    """One object of the prefix: its key below the prefix, size and digests."""

    key: str
    size: int
    md5: str  # hex
    sha256: str  # hex
    path: Optional[str] = None  # local file for src/ objects; None for the tarball and manifest


class Plan:
    """Every object the prefix must hold, computed from the local files.

    The tarball's digests are needed to verify it. Building it (gzip) is the
    dearest part of a no-op sync, so its size, MD5 and SHA-256 are remembered in
    the user's cache, keyed by content hash and mltp version (the tarball is a
    pure function of both); the tarball itself is built only to be uploaded. It
    stays in memory up to 32 MiB, in a temporary file beyond."""

    def __init__(self, config: Config, bundle: bundle_mod.Bundle, state_machine: Optional[str] = None):
        self.config = config
        self.bundle = bundle
        self.prefix = naming.code_prefix(config, bundle.content_hash, state_machine)
        self.uri = f"s3://{config.aws.bucket}/{self.prefix}"
        self._tarball: Optional[BinaryIO] = None
        digests = _cached_tarball_digests(bundle) or self._build_tarball()
        tar_size, tar_md5, tar_sha = digests
        manifest = bundle.manifest(tar_sha, tar_size)
        self.manifest_bytes = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8")
        self.objects: Dict[str, Expected] = {
            f"src/{f.relpath}": Expected(f"src/{f.relpath}", f.size, f.md5, f.sha256, f.path) for f in bundle.files
        }
        self.objects[bundle_mod.TARBALL] = Expected(bundle_mod.TARBALL, tar_size, tar_md5, tar_sha)
        self.objects[bundle_mod.MANIFEST] = Expected(
            bundle_mod.MANIFEST, len(self.manifest_bytes), hashlib.md5(self.manifest_bytes).hexdigest(),
            hashlib.sha256(self.manifest_bytes).hexdigest())

    def _build_tarball(self) -> Tuple[int, str, str]:
        self._tarball = tempfile.SpooledTemporaryFile(max_size=_SPOOL_LIMIT)
        bundle_mod.write_tarball(self.bundle, self._tarball)
        size = self._tarball.tell()
        self._tarball.seek(0)
        sha, md5 = hashlib.sha256(), hashlib.md5()
        for chunk in iter(lambda: self._tarball.read(1024 * 1024), b""):
            sha.update(chunk)
            md5.update(chunk)
        digests = (size, md5.hexdigest(), sha.hexdigest())
        _remember_tarball_digests(self.bundle, digests)
        return digests

    @property
    def tarball(self) -> BinaryIO:
        """The tarball's bytes, built on first use; they must match the digests verified."""
        if self._tarball is None:
            expected = self.objects[bundle_mod.TARBALL]
            if self._build_tarball() != (expected.size, expected.md5, expected.sha256):
                # A stale or damaged cache entry; the rebuild just replaced it.
                raise InvalidInput("sourcedir.tar.gz differs from the digests cached for it (now corrected); "
                                   "run `mltp sync` again")
        self._tarball.seek(0)
        return self._tarball

    def close(self) -> None:
        if self._tarball is not None:
            self._tarball.close()

    def __enter__(self) -> "Plan":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _digest_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mltp" / "tarballs"


def _digest_cache_path(bundle: bundle_mod.Bundle) -> Path:
    from . import __version__

    return _digest_cache_dir() / f"{bundle.content_hash}-{__version__}.json"


def _cached_tarball_digests(bundle: bundle_mod.Bundle) -> Optional[Tuple[int, str, str]]:
    try:
        data = json.loads(_digest_cache_path(bundle).read_text())
        return int(data["size"]), str(data["md5"]), str(data["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remember_tarball_digests(bundle: bundle_mod.Bundle, digests: Tuple[int, str, str]) -> None:
    path = _digest_cache_path(bundle)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        size, md5, sha = digests
        partial.write_text(json.dumps({"size": size, "md5": md5, "sha256": sha}))
        partial.replace(path)
    except OSError:  # a read-only home only costs the next sync a rebuild
        pass


@dataclass(frozen=True)
class Verification:
    differs: Tuple[Tuple[str, str], ...]  # (key below the prefix, why)
    unexpected: Tuple[str, ...]  # keys below the prefix that no file explains
    listed: int  # objects found under the prefix

    @property
    def ok(self) -> bool:
        return not self.differs and not self.unexpected

    def reasons(self) -> List[str]:
        return [f"{key} ({why})" for key, why in self.differs] + [f"{key} (unexpected)" for key in self.unexpected]


def _sha256_matches(clients: Clients, bucket: str, key: str, expected: Expected) -> bool:
    """S3's full-object SHA-256 (stored because every upload asks for it): the
    proof used when an ETag is not an MD5 (SSE-KMS)."""
    try:
        head = clients.s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **owner_args(clients))
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    stored = head.get("ChecksumSHA256") or ""
    want = base64.b64encode(bytes.fromhex(expected.sha256)).decode("ascii")
    return stored == want


def verify(plan: Plan, clients: Clients) -> Verification:
    """Compare the prefix with the plan: one ListObjectsV2 per 1000 objects, and a
    HEAD only for an object whose ETag is not the local MD5. Raises AwsRefused."""
    bucket = plan.config.aws.bucket
    listed: Dict[str, dict] = {}
    with _s3_errors(plan.config, "verify", plan.uri):
        pages = clients.s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=plan.prefix, **owner_args(clients))
        for page in pages:
            for item in page.get("Contents", []):
                listed[item["Key"][len(plan.prefix):]] = item
        differs: List[Tuple[str, str]] = []
        for key, want in plan.objects.items():
            found = listed.get(key)
            if found is None:
                differs.append((key, "missing"))
            elif int(found.get("Size", -1)) != want.size:
                differs.append((key, f"{found.get('Size')} bytes, expected {want.size}"))
            elif str(found.get("ETag", "")).strip('"') != want.md5 and not _sha256_matches(
                    clients, bucket, plan.prefix + key, want):
                differs.append((key, "content differs"))
    unexpected = tuple(sorted(k for k in listed if k not in plan.objects))
    return Verification(tuple(differs), unexpected, len(listed))


def _transfer_config(files: int):
    from boto3.s3.transfer import TransferConfig  # only uploads need it: keeps a no-op sync lean

    # One part per object, always: a single-part upload's ETag is its MD5, which
    # is what makes verifying a prefix cost one listing (see the module doc).
    options = dict(max_concurrency=max(1, min(MAX_CONCURRENCY, files)), use_threads=True,
                   multipart_threshold=SINGLE_PART_LIMIT)
    try:  # the classic (pure Python) manager: it honours endpoint_url and our retry config
        return TransferConfig(preferred_transfer_client="classic", **options)
    except TypeError:  # boto3 older than the CRT switch
        return TransferConfig(**options)


def upload(plan: Plan, clients: Clients, keys: Optional[Sequence[str]] = None,
           unexpected: Sequence[str] = (), manifest_present: bool = False) -> None:
    """Upload `keys` (default: every object) concurrently, delete `unexpected`,
    then write manifest.json alone, last. An existing manifest is deleted first,
    so a repair interrupted half-way leaves a prefix without one."""
    config, bucket, prefix = plan.config, plan.config.aws.bucket, plan.prefix
    args = put_args(config, clients)
    wanted = [k for k in (plan.objects if keys is None else keys) if k != bundle_mod.MANIFEST]

    with _s3_errors(config, "upload to", plan.uri):
        if manifest_present:
            clients.s3.delete_object(Bucket=bucket, Key=prefix + bundle_mod.MANIFEST, **owner_args(clients))
        if wanted and getattr(clients, "local", False):
            _put_each(plan, clients, wanted, args)
        elif wanted:
            from boto3.s3.transfer import create_transfer_manager

            with create_transfer_manager(clients.s3, _transfer_config(len(wanted))) as manager:
                futures = []
                for key in wanted:
                    if key == bundle_mod.TARBALL:
                        futures.append(manager.upload(plan.tarball, bucket, prefix + key,
                                                      extra_args={**args, "ContentType": "application/gzip"}))
                    else:
                        futures.append(manager.upload(plan.objects[key].path, bucket, prefix + key,
                                                      extra_args=dict(args)))
                for future in futures:
                    future.result()  # the first failure cancels the rest (on leaving the manager)
        for start in range(0, len(unexpected), 1000):
            batch = [{"Key": prefix + key} for key in unexpected[start:start + 1000]]
            answer = clients.s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True},
                                               **owner_args(clients))
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise AwsRefused(f"upload to {plan.uri}: could not delete {first.get('Key')}: "
                                 f"{first.get('Code')}: {first.get('Message', '')}".rstrip(": "))
        _check_unchanged(plan.bundle)
        clients.s3.put_object(Bucket=bucket, Key=prefix + bundle_mod.MANIFEST, Body=plan.manifest_bytes,
                              ContentType="application/json", **args)


def _put_each(plan: Plan, clients: Clients, keys: Sequence[str], args: dict) -> None:
    """One PutObject per object, in turn, with the same arguments: the request
    the transfer manager sends for an object below its multipart threshold
    (every object here, see _transfer_config), without its pool of threads.
    For the local emulator, which answers in this process: there the threads
    only add their start-up and contend with it."""
    bucket, prefix = plan.config.aws.bucket, plan.prefix
    for key in keys:
        if key == bundle_mod.TARBALL:
            clients.s3.put_object(Bucket=bucket, Key=prefix + key, Body=plan.tarball, ContentType="application/gzip",
                                  **args)
            continue
        with open(plan.objects[key].path, "rb") as body:
            clients.s3.put_object(Bucket=bucket, Key=prefix + key, Body=body, **args)


def _check_unchanged(bundle: bundle_mod.Bundle) -> None:
    """The prefix is named by the hash taken before the upload; if a file changed
    meanwhile, writing the manifest would seal content that does not match its
    name, forever. Without a manifest the next sync simply uploads again."""
    files = [RepoFile(f.relpath, Path(f.path), f.size) for f in bundle.files]
    if bundle_mod.make(files).content_hash != bundle.content_hash:
        raise InvalidInput("the model repo changed while `mltp sync` was uploading it; run it again")


def sync(config: Config, clients: Clients, files: Sequence[RepoFile],
         bundle: Optional[bundle_mod.Bundle] = None, state_machine: Optional[str] = None) -> SyncResult:
    """Verify the prefix; upload what is missing, replace what differs, delete
    what does not belong; say which."""
    bundle = bundle or bundle_mod.make(files)
    with Plan(config, bundle, state_machine) as plan:
        checked = verify(plan, clients)
        if checked.ok:
            return SyncResult(bundle.content_hash, plan.uri, False, len(bundle.files), bundle.size)
        manifest_present = not any(key == bundle_mod.MANIFEST and why == "missing" for key, why in checked.differs)
        keys = [key for key, _ in checked.differs]
        upload(plan, clients, keys, checked.unexpected, manifest_present)
        fresh = checked.listed == 0 or (not manifest_present and not checked.unexpected
                                        and all(why == "missing" for _, why in checked.differs))
        repaired = () if fresh else tuple(f"{key} ({why})" for key, why in checked.differs
                                          if key != bundle_mod.MANIFEST)
        removed = () if fresh else checked.unexpected
        return SyncResult(bundle.content_hash, plan.uri, True, len(bundle.files), bundle.size, repaired, removed)


def require_verified(config: Config, clients: Clients, bundle: bundle_mod.Bundle,
                     state_machine: Optional[str] = None) -> None:
    """For `start`: the prefix must hold exactly this bundle; else exit 2 saying
    what differs and that `mltp sync` repairs it."""
    with Plan(config, bundle, state_machine) as plan:
        checked = verify(plan, clients)
    if checked.ok:
        return
    if checked.listed == 0:
        raise InvalidInput(f"the code is not in S3: {plan.uri} is empty (no manifest.json); run `mltp sync` first")
    reasons = checked.reasons()
    raise InvalidInput(
        f"the code at {plan.uri} does not verify against the model repo: {_listed(reasons)}; "
        f"run `mltp sync` to repair it"
    )
