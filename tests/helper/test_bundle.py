"""The code bundle is reproducible: same files, same hash and same tarball bytes,
whatever the file system says about times, owners or read permissions."""

import gzip
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from mltp import bundle, repo


def make_bundle(path: Path) -> bundle.Bundle:
    return bundle.make(repo.list_files(path))


def scramble_metadata(path: Path) -> None:
    """New mtimes and read/write bits on every file: none of it may matter."""
    for index, item in enumerate(sorted(path.rglob("*"))):
        if item.is_file():
            os.utime(item, (1_700_000_000 + index, 1_700_000_000 + index * 7))
            os.chmod(item, 0o600 if index % 2 else 0o664)


def test_same_files_same_bytes(example_repo, tmp_path):
    first = make_bundle(example_repo)
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(example_repo, copy)
    scramble_metadata(copy)
    second = make_bundle(copy)
    assert first.content_hash == second.content_hash
    assert len(first.content_hash) == bundle.HASH_LENGTH
    assert bundle.tarball_bytes(first) == bundle.tarball_bytes(second)
    assert first.manifest() == second.manifest()


def test_changed_content_changes_hash(example_repo):
    before = make_bundle(example_repo)
    before_bytes = bundle.tarball_bytes(before)
    with open(example_repo / "train.py", "a") as handle:
        handle.write("\n# tuned\n")
    after = make_bundle(example_repo)
    assert before.content_hash != after.content_hash
    assert before_bytes != bundle.tarball_bytes(after)


def test_renamed_file_changes_hash(example_repo):
    before = make_bundle(example_repo)
    (example_repo / "fraud" / "features.py").rename(example_repo / "fraud" / "features2.py")
    assert make_bundle(example_repo).content_hash != before.content_hash


def test_executable_bit_is_content(example_repo):
    """The training job sees modes from the tarball, so the x bit is part of the hash."""
    before = make_bundle(example_repo)
    os.chmod(example_repo / "train.py", 0o755)
    after = make_bundle(example_repo)
    assert after.content_hash != before.content_hash
    with tarfile.open(fileobj=io.BytesIO(bundle.tarball_bytes(after))) as tar:
        assert tar.getmember("train.py").mode == 0o755
        assert tar.getmember("evaluation.py").mode == 0o644


def test_tarball_is_normalized(example_repo):
    data = bundle.tarball_bytes(make_bundle(example_repo))
    # gzip header: magic, method, flags (no FNAME), mtime 0
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] & 0x08 == 0, "no file name in the gzip header"
    assert data[4:8] == b"\0\0\0\0", "gzip mtime 0"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        for m in members:
            assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
            assert m.mtime == bundle.FIXED_MTIME
            assert m.mode in (0o644, 0o755)
        files = [m.name for m in members if m.isfile()]
        assert files == sorted(files)
        assert "train.py" in files and "fraud/features.py" in files
        assert names.index("fraud") < names.index("fraud/features.py")
        assert tar.extractfile("train.py").read() == (example_repo / "train.py").read_bytes()


def test_ignored_files_never_in_the_bundle(example_repo):
    secrets = [".env", ".env.local", "id_rsa", "id_rsa.pub", "keys/server.pem", ".git/config",
               "__pycache__/train.cpython-311.pyc", "data/big.csv", "notes.tmp", ".mltp/runs/x/report.json"]
    for rel in secrets:
        target = example_repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("secret\n")
    (example_repo / ".mltpignore").write_text("data/\n*.tmp\n")
    built = make_bundle(example_repo)
    shipped = {f.relpath for f in built.files}
    assert not shipped & set(secrets)
    assert ".mltpignore" in shipped and "train.py" in shipped
    with tarfile.open(fileobj=io.BytesIO(bundle.tarball_bytes(built))) as tar:
        assert not set(tar.getnames()) & set(secrets)


def test_manifest_lists_files_with_digests(example_repo):
    built = make_bundle(example_repo)
    doc = built.manifest("ab" * 32, 1234)
    assert doc["content_hash"] == built.content_hash
    assert doc["sourcedir.tar.gz"] == {"size": 1234, "sha256": "ab" * 32}
    entry = next(f for f in doc["files"] if f["path"] == "train.py")
    assert entry["size"] == (example_repo / "train.py").stat().st_size
    assert len(entry["sha256"]) == 64 and entry["executable"] is False


@pytest.mark.parametrize("size", [0, 1, 10_000_000])
def test_large_and_empty_files(tmp_path, size):
    (tmp_path / "blob.bin").write_bytes(b"x" * size)
    built = make_bundle(tmp_path)
    with tarfile.open(fileobj=io.BytesIO(bundle.tarball_bytes(built))) as tar:
        assert tar.getmember("blob.bin").size == size
    assert gzip.decompress(bundle.tarball_bytes(built))  # a valid gzip stream
