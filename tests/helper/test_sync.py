"""`mltp sync` against moto over HTTP: what lands in S3, in which order, and
that a repeated sync costs exactly one request."""

import json
import threading
import uuid
from pathlib import Path
from typing import List, Optional, Tuple

import boto3
import pytest
from click.testing import CliRunner

from mltp import bundle, config as config_mod, repo as repo_mod, sync as sync_mod
from mltp.aws import Clients
from mltp.cli import main

REGION = "ap-northeast-2"
ACCOUNT = "123456789012"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def configure(repo: Path, name: str, bucket: str, kms_key_id: Optional[str] = None) -> None:
    path = repo / "config.yaml"
    text = path.read_text()
    text = text.replace("name: fraud-detection\n", f"name: {name}\n", 1)
    text = text.replace("bucket: mlops-artifacts", f"bucket: {bucket}")
    if kms_key_id:
        text = text.replace("  prefix: mltp\n", f"  prefix: mltp\n  kms_key_id: {kms_key_id}\n")
    path.write_text(text)


def make_bucket(endpoint: str, name: str) -> None:
    boto3.client("s3", region_name=REGION, endpoint_url=endpoint).create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})


class Calls:
    """Records (operation, params) of every call one botocore client makes."""

    def __init__(self, client):
        self.items: List[Tuple[str, dict]] = []
        self._lock = threading.Lock()
        client.meta.events.register("before-call", self._record)

    def _record(self, model, params, **kwargs):
        with self._lock:
            self.items.append((model.name, dict(params.get("headers", {})) | {"_body": params.get("url_path")}))

    @property
    def names(self) -> List[str]:
        return [name for name, _ in self.items]


@pytest.fixture
def model(example_repo, aws_env):
    """The example repo, renamed to a unique model with its own bucket."""
    name, bucket = unique("m"), unique("mltp-bkt")
    make_bucket(aws_env, bucket)
    configure(example_repo, name, bucket)
    return example_repo


def load(repo: Path):
    cfg = config_mod.load(repo)
    return cfg, repo_mod.list_files(repo)


def keys(endpoint: str, bucket: str, prefix: str) -> List[str]:
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"][len(prefix):] for page in pages for obj in page.get("Contents", []))


def local_clients(endpoint: str, monkeypatch) -> Clients:
    """Clients as a local run has them (the emulator's): sync puts each object
    itself there, with no transfer manager."""
    import boto3.s3.transfer

    def refused(*args, **kwargs):
        raise AssertionError("a local sync uses no transfer manager")

    monkeypatch.setattr(boto3.s3.transfer, "create_transfer_manager", refused)
    clients = Clients(REGION, endpoint)
    clients.local = True
    return clients


@pytest.mark.parametrize("local", [False, True], ids=["aws", "local"])
def test_first_sync_uploads_files_tarball_then_manifest(model, aws_env, monkeypatch, local):
    cfg, files = load(model)
    clients = local_clients(aws_env, monkeypatch) if local else Clients(REGION, aws_env)
    calls = Calls(clients.s3)
    result = sync_mod.sync(cfg, clients, files)
    built = bundle.make(files)
    prefix = f"mltp/{cfg.name}/code/{built.content_hash}/"
    assert result.uploaded and result.content_hash == built.content_hash
    assert result.uri == f"s3://{cfg.aws.bucket}/{prefix}"
    # the repo's files plus mltp's entry points (processing entry, evaluation guard)
    assert keys(aws_env, cfg.aws.bucket, prefix) == sorted(
        ["manifest.json", "sourcedir.tar.gz", "src/.mltp/evaluation_guard.py", "src/.mltp/processing_entry.py"] + [f"src/{f.relpath}" for f in files])
    # manifest.json is the very last write
    puts = [params["_body"] for name, params in calls.items if name == "PutObject"]
    assert puts[-1].endswith("/manifest.json") and len(puts) == len(files) + 4
    # every S3 call names the expected bucket owner
    for name, params in calls.items:
        assert params.get("x-amz-expected-bucket-owner") == ACCOUNT, name
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=aws_env)
    assert s3.head_object(Bucket=cfg.aws.bucket, Key=prefix + "sourcedir.tar.gz")["ContentType"] == "application/gzip"
    tarball = s3.get_object(Bucket=cfg.aws.bucket, Key=prefix + "sourcedir.tar.gz")["Body"].read()
    assert tarball == bundle.tarball_bytes(built)
    manifest = json.loads(s3.get_object(Bucket=cfg.aws.bucket, Key=prefix + "manifest.json")["Body"].read())
    assert manifest["content_hash"] == built.content_hash
    assert [f["path"] for f in manifest["files"]] == sorted([f.relpath for f in files] + [".mltp/evaluation_guard.py", ".mltp/processing_entry.py"])
    assert manifest["sourcedir.tar.gz"]["size"] == len(tarball)
    assert s3.get_object(Bucket=cfg.aws.bucket, Key=prefix + "src/train.py")["Body"].read() == \
        (model / "train.py").read_bytes()


def test_unchanged_sync_is_one_listing(model, aws_env):
    """Verifying every object of the prefix costs one ListObjectsV2 (sizes and
    ETags; the ETags are the MD5s of single-part uploads, computed locally)."""
    cfg, files = load(model)
    sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    clients = Clients(REGION, aws_env)
    calls = Calls(clients.s3)
    result = sync_mod.sync(cfg, clients, files)
    assert not result.uploaded
    assert calls.names == ["ListObjectsV2"]
    assert result.summary() == f"sync: unchanged, {result.uri} is complete and verified"


def test_ignored_files_are_never_uploaded(model, aws_env):
    secrets = [".env", "id_rsa", ".git/config", "keys/deploy.pem", "data/big.csv", "scratch.tmp"]
    for rel in secrets:
        (model / rel).parent.mkdir(parents=True, exist_ok=True)
        (model / rel).write_text("do not ship\n")
    (model / ".mltpignore").write_text("data/\n*.tmp\n")
    cfg, files = load(model)
    result = sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    uploaded = keys(aws_env, cfg.aws.bucket, f"mltp/{cfg.name}/")
    assert uploaded and all(not key.endswith(tuple(secrets)) for key in uploaded)
    assert f"code/{result.content_hash}/src/.mltpignore" in uploaded


def test_changed_file_lands_under_a_new_prefix(model, aws_env):
    cfg, files = load(model)
    first = sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    with open(model / "train.py", "a") as handle:
        handle.write("\n# another try\n")
    cfg, files = load(model)
    second = sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    assert second.uploaded and second.content_hash != first.content_hash
    code = keys(aws_env, cfg.aws.bucket, f"mltp/{cfg.name}/code/")
    assert {k.split("/")[0] for k in code} == {first.content_hash, second.content_hash}


def test_prefix_without_manifest_is_uploaded_again(model, aws_env):
    cfg, files = load(model)
    first = sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    prefix = f"mltp/{cfg.name}/code/{first.content_hash}/"
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=aws_env)
    s3.delete_object(Bucket=cfg.aws.bucket, Key=prefix + "manifest.json")
    s3.delete_object(Bucket=cfg.aws.bucket, Key=prefix + "src/train.py")  # an interrupted upload
    again = sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    assert again.uploaded and again.content_hash == first.content_hash
    assert "manifest.json" in keys(aws_env, cfg.aws.bucket, prefix)
    assert "src/train.py" in keys(aws_env, cfg.aws.bucket, prefix)


def test_kms_key_is_used_for_every_object(example_repo, aws_env):
    name, bucket = unique("m"), unique("mltp-bkt")
    make_bucket(aws_env, bucket)
    configure(example_repo, name, bucket, kms_key_id="alias/mlops")
    cfg, files = load(example_repo)
    clients = Clients(REGION, aws_env)
    calls = Calls(clients.s3)
    result = sync_mod.sync(cfg, clients, files)
    puts = [params for op, params in calls.items if op == "PutObject"]
    assert len(puts) == len(files) + 4
    for params in puts:
        assert params["x-amz-server-side-encryption"] == "aws:kms"
        assert params["x-amz-server-side-encryption-aws-kms-key-id"] == "alias/mlops"
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=aws_env)
    stored = s3.head_object(Bucket=bucket, Key=f"mltp/{name}/code/{result.content_hash}/sourcedir.tar.gz")
    assert stored["ServerSideEncryption"] == "aws:kms" and stored["SSEKMSKeyId"] == "alias/mlops"


def test_repo_changing_during_upload_leaves_no_manifest(model, aws_env, monkeypatch):
    cfg, files = load(model)
    real = bundle.write_tarball

    def write_then_edit(built, out):
        real(built, out)
        with open(model / "train.py", "a") as handle:
            handle.write("\n# edited mid-sync\n")

    monkeypatch.setattr(bundle, "write_tarball", write_then_edit)
    from mltp.errors import InvalidInput

    with pytest.raises(InvalidInput, match="changed while"):
        sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    assert not any(k.endswith("manifest.json") for k in keys(aws_env, cfg.aws.bucket, f"mltp/{cfg.name}/"))


def test_cli_sync_prints_uploaded_then_unchanged(model, aws_env):
    runner = CliRunner()
    first = runner.invoke(main, ["sync", str(model)])
    assert first.exit_code == 0, first.output
    assert first.output.startswith("sync: uploaded 10 files (")  # the repo's files and mltp's two entry points
    assert "KiB) to s3://" in first.output and first.output.count("\n") == 1
    second = runner.invoke(main, ["sync", str(model)])
    assert second.exit_code == 0, second.output
    assert second.output.startswith("sync: unchanged, s3://") and second.output.rstrip().endswith("is complete and verified")


def test_cli_sync_missing_bucket_exits_5(example_repo, aws_env, tmp_path):
    bucket = unique("no-such-bucket")
    configure(example_repo, unique("m"), bucket)
    result = CliRunner().invoke(main, ["sync", str(example_repo)],
                                env={"MLTP_ERROR_FILE": str(tmp_path / "error.txt")})
    assert result.exit_code == 5, result.output
    assert f"bucket '{bucket}' does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert bucket in (tmp_path / "error.txt").read_text()




# What a no-op sync process imports: each of these costs every build's sync
# time and none of them is needed to verify a prefix (config/schema_cache.py, aws.Session).
NOT_IMPORTED = ("boto3", "s3transfer", "yaml", "jsonschema", "mltp.config.checks")
PROBE = """
import atexit, sys
atexit.register(lambda: print("imported:", *[m for m in sys.argv[2].split(",") if m in sys.modules], file=sys.stderr))
from mltp.cli import main
main(["sync", sys.argv[1]])
"""


def test_a_no_op_sync_process_imports_no_parser_validator_or_transfer_library(model, aws_env, tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, MLTP_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("MLTP_NO_DEFINITION_CACHE", None)
    runs = [subprocess.run([sys.executable, "-c", PROBE, str(model), ",".join(NOT_IMPORTED)], env=env,
                           capture_output=True, text=True, timeout=300) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert runs[0].stdout.startswith("sync: uploaded ") and "boto3" in runs[0].stderr  # an upload needs them
    assert runs[1].stdout.startswith("sync: unchanged, ")
    assert runs[1].stderr.strip() == "imported:"


# --------------------------------------------------------------------------- integrity: every object verified


def s3(endpoint: str):
    return boto3.client("s3", region_name=REGION, endpoint_url=endpoint)


def test_tampered_and_incomplete_prefix_is_repaired_and_said(model, aws_env):
    """The review's reproduction: overwrite src/train.py, delete sourcedir.tar.gz,
    plant src/sitecustomize.py; manifest.json still there. sync must not say
    'unchanged': it repairs each object and names it."""
    cfg, files = load(model)
    first = sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    prefix = f"mltp/{cfg.name}/code/{first.content_hash}/"
    client = s3(aws_env)
    client.put_object(Bucket=cfg.aws.bucket, Key=prefix + "src/train.py", Body=b"import os; os.system('evil')\n")
    client.delete_object(Bucket=cfg.aws.bucket, Key=prefix + "sourcedir.tar.gz")
    client.put_object(Bucket=cfg.aws.bucket, Key=prefix + "src/sitecustomize.py", Body=b"print('planted')\n")
    result = sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    assert result.uploaded
    assert result.summary() == (
        f"sync: repaired {result.uri}: replaced 2 objects (src/train.py (29 bytes, expected "
        f"{(model / 'train.py').stat().st_size}), "
        f"sourcedir.tar.gz (missing)); removed 1 unexpected object (src/sitecustomize.py)")
    assert client.get_object(Bucket=cfg.aws.bucket, Key=prefix + "src/train.py")["Body"].read() == \
        (model / "train.py").read_bytes()
    built = bundle.make(files)
    assert client.get_object(Bucket=cfg.aws.bucket, Key=prefix + "sourcedir.tar.gz")["Body"].read() == \
        bundle.tarball_bytes(built)
    assert "src/sitecustomize.py" not in keys(aws_env, cfg.aws.bucket, prefix)
    again = sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    assert not again.uploaded


def test_same_size_overwrite_is_caught(model, aws_env):
    """Size alone proves nothing: same length, different bytes."""
    cfg, files = load(model)
    first = sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    key = f"mltp/{cfg.name}/code/{first.content_hash}/src/train.py"
    original = (model / "train.py").read_bytes()
    s3(aws_env).put_object(Bucket=cfg.aws.bucket, Key=key, Body=original.replace(b"a", b"b", 1))
    result = sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    assert result.repaired == ("src/train.py (content differs)",)


@pytest.mark.parametrize("local", [False, True], ids=["aws", "local"])
def test_repair_deletes_the_manifest_first_and_writes_it_last(model, aws_env, monkeypatch, local):
    cfg, files = load(model)
    first = sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    prefix = f"mltp/{cfg.name}/code/{first.content_hash}/"
    s3(aws_env).delete_object(Bucket=cfg.aws.bucket, Key=prefix + "src/train.py")
    clients = local_clients(aws_env, monkeypatch) if local else Clients(REGION, aws_env)
    calls = Calls(clients.s3)
    sync_mod.sync(cfg, clients, files)
    writes = [(name, params["_body"]) for name, params in calls.items if name in ("PutObject", "DeleteObject")]
    assert writes[0] == ("DeleteObject", f"/{prefix}manifest.json")
    assert writes[-1] == ("PutObject", f"/{prefix}manifest.json")
    assert [w for w in writes[1:-1]] == [("PutObject", f"/{prefix}src/train.py")]


def test_object_with_a_foreign_etag_is_checked_by_sha256(model, aws_env):
    """An ETag that is not the MD5 (multipart, SSE-KMS) costs one HEAD for S3's
    SHA-256; an object put without one cannot be proven and is replaced."""
    cfg, files = load(model)
    first = sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    key = f"mltp/{cfg.name}/code/{first.content_hash}/src/train.py"
    client = s3(aws_env)
    upload = client.create_multipart_upload(Bucket=cfg.aws.bucket, Key=key)
    part = client.upload_part(Bucket=cfg.aws.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1,
                              Body=(model / "train.py").read_bytes())
    client.complete_multipart_upload(Bucket=cfg.aws.bucket, Key=key, UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    clients = Clients(REGION, aws_env)
    calls = Calls(clients.s3)
    result = sync_mod.sync(cfg, clients, files)
    assert result.repaired == ("src/train.py (content differs)",)
    assert calls.names[:2] == ["ListObjectsV2", "HeadObject"]
    heads = [params for name, params in calls.items if name == "HeadObject"]
    assert heads[0].get("x-amz-checksum-mode") == "ENABLED"
    # re-uploaded single part with a SHA-256: verified by the listing alone now
    clients = Clients(REGION, aws_env)
    calls = Calls(clients.s3)
    assert not sync_mod.sync(cfg, clients, files).uploaded
    assert calls.names == ["ListObjectsV2"]


@pytest.mark.parametrize("local", [False, True], ids=["aws", "local"])
def test_every_object_is_stored_with_a_sha256(model, aws_env, monkeypatch, local):
    cfg, files = load(model)
    result = sync_mod.sync(cfg, local_clients(aws_env, monkeypatch) if local else Clients(REGION, aws_env), files)
    prefix = f"mltp/{cfg.name}/code/{result.content_hash}/"
    for key in keys(aws_env, cfg.aws.bucket, prefix):
        head = s3(aws_env).head_object(Bucket=cfg.aws.bucket, Key=prefix + key, ChecksumMode="ENABLED")
        assert head.get("ChecksumSHA256"), key


def test_branch_code_has_its_own_prefix(model, aws_env, monkeypatch):
    """A branch or pull request never writes where the default branch reads."""
    monkeypatch.setenv("BRANCH_NAME", "PR-12")
    monkeypatch.setenv("CHANGE_ID", "12")
    result = CliRunner().invoke(main, ["sync", str(model)])
    assert result.exit_code == 0, result.output
    cfg, files = load(model)
    content_hash = bundle.make(files).content_hash
    assert f"/mltp/{cfg.name}/code/branches/pr-12-" in result.output and f"/{content_hash}/" in result.output
    assert keys(aws_env, cfg.aws.bucket, f"mltp/{cfg.name}/code/{content_hash}/") == []


def test_content_hash_has_128_bits(model):
    _, files = load(model)
    assert len(bundle.make(files).content_hash) * 4 >= 128


def test_no_op_sync_does_not_rebuild_the_tarball(model, aws_env, monkeypatch):
    """The tarball's digests are cached per content hash: verifying an unchanged
    prefix needs no gzip of the repo."""
    cfg, files = load(model)
    sync_mod.sync(cfg, Clients(REGION, aws_env), files)

    def refuse(*args, **kwargs):
        raise AssertionError("the tarball was rebuilt")

    monkeypatch.setattr(bundle, "write_tarball", refuse)
    assert not sync_mod.sync(cfg, Clients(REGION, aws_env), files).uploaded


def test_a_damaged_digest_cache_is_caught_and_corrected(model, aws_env):
    cfg, files = load(model)
    built = bundle.make(files)
    first = sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    s3(aws_env).delete_object(Bucket=cfg.aws.bucket, Key=f"mltp/{cfg.name}/code/{first.content_hash}/sourcedir.tar.gz")
    cache = sync_mod._digest_cache_path(built)
    cache.write_text(json.dumps({"size": 1, "md5": "0" * 32, "sha256": "0" * 64}))
    from mltp.errors import InvalidInput

    with pytest.raises(InvalidInput, match="run `mltp sync` again"):
        sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    again = sync_mod.sync(cfg, Clients(REGION, aws_env), files)
    assert again.repaired == ("sourcedir.tar.gz (missing)",) or again.uploaded
    assert not sync_mod.sync(cfg, Clients(REGION, aws_env), files).uploaded
