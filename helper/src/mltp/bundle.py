"""The code bundle: the shipped files, their content hash and sourcedir.tar.gz.

The content hash names the S3 code prefix (docs/contract.md, 6.1), so it must depend on
what the jobs will see and on nothing else: paths, bytes and the executable bit,
never mtimes, owners or the order the file system lists them in. The tarball is
made just as reproducible (sorted entries, fixed mtime, owner 0/"", normalized
modes, a gzip header without name or time), so the same files give the same
bytes on any agent; that keeps uploads comparable and builds auditable.
"""

import gzip
import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, List, Sequence, Tuple

from . import __version__
# HASH_LENGTH hex digits: 128 bits. The hash names the code prefix a later run trusts;
# 64 bits were within reach of a birthday search by anyone who can push a branch.
from .code_keys import HASH_LENGTH, MANIFEST, TARBALL  # noqa: F401  (names the bundle makes)
from .repo import RepoFile

# 1980-01-02, not 0: SageMaker pip-installs a sourcedir that has a setup.py, and
# zip (wheels) cannot store times before 1980; one day of margin for time zones.
FIXED_MTIME = 315619200
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class BundleFile:
    relpath: str
    path: str
    size: int
    sha256: str
    executable: bool
    md5: str = ""  # what S3 reports as the ETag of a single-part, non-KMS upload

    @property
    def mode(self) -> int:
        return 0o755 if self.executable else 0o644


@dataclass(frozen=True)
class Bundle:
    files: Tuple[BundleFile, ...]  # sorted by relpath
    content_hash: str

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def manifest(self, tarball_sha256: str = "", tarball_size: int = 0) -> dict:
        """What manifest.json holds; written last, it marks a code prefix complete."""
        doc = {
            "content_hash": self.content_hash,
            "mltp_version": __version__,
            "files": [
                {"path": f.relpath, "size": f.size, "sha256": f.sha256, "executable": f.executable}
                for f in self.files
            ],
        }
        if tarball_sha256:
            doc[TARBALL] = {"size": tarball_size, "sha256": tarball_sha256}
        return doc


def _file_digest(path: str) -> Tuple[str, int, str]:
    digest = hashlib.sha256()
    md5 = hashlib.md5()
    size = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size, md5.hexdigest()


def content_hash(files: Sequence[BundleFile]) -> str:
    """sha256 over one line per file, sorted by path: '<relpath>\\0<mode>\\0<sha256 of bytes>\\n'.
    NUL cannot occur in a path, so no two file lists give the same text."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.relpath):
        digest.update(f"{f.relpath}\0{f.mode:o}\0{f.sha256}\n".encode("utf-8"))
    return digest.hexdigest()[:HASH_LENGTH]


def _with_guard(files: Sequence[RepoFile]) -> List[RepoFile]:
    """The repo's files plus mltp's two entry points: the processing jobs' entry
    (installs requirements.txt, then runs the script; see processing_entry) and
    the evaluation guard (see evaluation_guard). `.mltp/` is never shipped from
    a repo, so the names cannot clash; being in the bundle, both are part of the
    content hash and verified with the rest of the code."""
    from . import evaluation_guard, processing_entry

    out = list(files)
    shipped = {f.relpath for f in files}
    for module in (processing_entry, evaluation_guard):
        if module.SHIPPED_AS not in shipped:
            source = Path(module.__file__)
            out.append(RepoFile(module.SHIPPED_AS, source, source.stat().st_size))
    return out


def make(files: Sequence[RepoFile]) -> Bundle:
    """Reads every file once to hash it; builds no tarball (a no-op sync needs none)."""
    out: List[BundleFile] = []
    for f in sorted(_with_guard(files), key=lambda f: f.relpath):
        sha, size, md5 = _file_digest(str(f.path))
        executable = bool(os.stat(f.path).st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
        out.append(BundleFile(f.relpath, str(f.path), size, sha, executable, md5))
    return Bundle(tuple(out), content_hash(out))


def _tarinfo(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tarball(bundle: Bundle, out: BinaryIO) -> None:
    """sourcedir.tar.gz for the training job: the files at the archive root, as
    SageMaker script mode expects, with parent folders listed before their files."""
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
            folders = set()
            for f in bundle.files:
                parts = f.relpath.split("/")[:-1]
                for depth in range(1, len(parts) + 1):
                    folder = "/".join(parts[:depth])
                    if folder not in folders:
                        folders.add(folder)
                        tar.addfile(_tarinfo(folder, tarfile.DIRTYPE, 0o755))
                with open(f.path, "rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    tar.addfile(_tarinfo(f.relpath, tarfile.REGTYPE, f.mode, size), handle)


def tarball_bytes(bundle: Bundle) -> bytes:
    buffer = io.BytesIO()
    write_tarball(bundle, buffer)
    return buffer.getvalue()
