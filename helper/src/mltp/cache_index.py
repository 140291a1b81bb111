"""Where the step cache remembers which run produced which step's outputs
(docs/contract.md, 8.4): one small JSON record per step and successful run,
written by `mltp wait` (and so by `mltp run`) when the run ends, read by
`mltp start` and `mltp plan` before a run.

On AWS the records live beside the runs they point at, under the state
machine's own area of the model's prefix:

    <prefix>/<name>/cache/<step>/<key>/<run>.json                    default branch
    <prefix>/<name>/branches/<slug>/cache/<step>/<key>/<run>.json     other branches, pull requests

so the default branch reads only records that default-branch builds wrote: a
pull request can never plant outputs that the default branch later reuses. A
branch or pull request reads its own records first, then the default branch's
(never another branch's); a default-branch hit is not handed to the branch's
jobs where it lies (under `runs/`, out of a branch job role's reach) but
copied, server-side and by the build's own credentials, into the branch run's
own folder first (`copy_into`), and the jobs read that copy. The job roles
cannot write the records (they write `runs/*`, `branches/*/runs/*` only), and
every output a record names must lie under the run folder of the run it names,
of the same state machine, or the record is ignored.

A local run's emulator S3 vanishes with the run, so locally the record sits in
`.mltp/cache/<state machine>/<step>/<key>/<run>.json` and the step's output
files beside it, in `<run>/<n>/`; a hit puts them back into the emulator's S3
at their original URIs before the run starts, and the run reads them from
there exactly as on AWS. A local branch run (BRANCH_NAME, CHANGE_ID) reads
`.mltp/cache/<name>--<branch>/` first, then `.mltp/cache/<name>/`, whose files a
hit puts into the branch run's own folder instead.
"""

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import cache_rules, naming
from .cache_rules import DATA_KEYS, OUTPUT_KEYS, RECORD_VERSION  # noqa: F401  (this module's names since the start)
from .config import Config

# A default-branch hit's outputs are copied in parts of this size above it (S3's
# CopyObject takes at most 5 GB; fewer, larger parts copy faster).
COPY_PART_BYTES = 256 * 1024 * 1024

@dataclass(frozen=True)
class Record:
    model: str
    state_machine: str
    role: str
    key: str
    run: str
    finished: str  # ISO 8601, UTC
    parts: Dict[str, str] = field(default_factory=dict)
    outputs: Dict[str, str] = field(default_factory=dict)
    version: int = RECORD_VERSION

    @property
    def finished_at(self) -> datetime:
        return cache_rules.finished_at(self.finished)

    def age(self, now: datetime) -> timedelta:
        return now - self.finished_at

    def expired(self, now: datetime, days: int) -> bool:
        return cache_rules.expired(self.finished_at, now, days)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def parse(text, config: Config, state_machine: str, role: str) -> Optional[Record]:
    """A record, or None when it is not one this state machine may reuse:
    another model, state machine or step, or an output outside its run's folder
    (cache_rules.read_record, the rules the retrain trigger applies too)."""
    fields = cache_rules.read_record(text, config.name, state_machine, role, config.aws.bucket,
                                     lambda run: naming.run_prefix(config, run, state_machine))
    return Record(**fields) if fields is not None else None


def record_for(config: Config, state_machine: str, role: str, key: str, parts: Dict[str, str],
               execution_input: Dict[str, object], now: Optional[datetime] = None) -> Record:
    run = str(execution_input["RunName"])
    outputs = {k: str(execution_input[k]) for k in OUTPUT_KEYS[role]}
    return Record(config.name, state_machine, role, key, run, (now or now_utc()).isoformat(), dict(parts), outputs)


# Below this a file moves to or from the emulator in one request (see put_file).
SINGLE_REQUEST_BYTES = 256 * 1024 * 1024


def download_prefix(s3, bucket: str, key: str, target: Path) -> None:
    """Every object under `key` into `target`, relative paths kept (a key naming
    one object: that object by its name); folder markers and keys with `..` are
    skipped, so nothing lands outside `target`. For the cache's copies of a
    step's outputs and resume's copy of a failed run's, out of the local
    emulator: one GetObject each (see put_file), written in place, since the
    caller's folder is not used until the caller seals it (the cache renames
    its folder into place and writes the record last; resume writes its
    input.json last)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        for item in page.get("Contents", []):
            rel = item["Key"][len(key):] if key.endswith("/") else item["Key"].rsplit("/", 1)[-1]
            if not rel or rel.endswith("/") or ".." in rel.split("/"):
                continue
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if int(item.get("Size", 0)) > SINGLE_REQUEST_BYTES:
                s3.download_file(bucket, item["Key"], str(dest))
                continue
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"]
            try:
                with open(dest, "wb") as out:
                    for chunk in body.iter_chunks(1 << 20):
                        out.write(chunk)
            finally:
                body.close()


def put_file(s3, path: Path, bucket: str, key: str) -> None:
    """A kept file into the local emulator's S3 with one PutObject: boto3's
    upload_file (s3transfer) sets up a pool of threads for every call, which
    against the emulator, answering in this process, is most of the cost. A
    file too large for one request on AWS still goes through upload_file."""
    if path.stat().st_size > SINGLE_REQUEST_BYTES:
        s3.upload_file(str(path), bucket, key)
        return
    with open(path, "rb") as body:
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def _split(uri: str) -> Tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


@dataclass(frozen=True)
class Copied:
    """What copy_into copied: for the log line."""

    objects: int
    size: int  # bytes
    seconds: float

    def text(self) -> str:
        from .outcome import format_duration

        took = f"{self.seconds:.1f}s" if self.seconds < 10 else format_duration(self.seconds)
        return f"{self.objects} object{'s' if self.objects != 1 else ''}, {size_text(self.size)}, {took}"


def size_text(size: int) -> str:
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"


# --------------------------------------------------------------------------- on AWS


class S3Index:
    """The records in the model's bucket, for one state machine."""

    def __init__(self, clients, config: Config, state_machine: str):
        self.clients, self.config, self.state_machine = clients, config, state_machine
        branch = naming.branch_of(config, state_machine)
        base = naming.model_prefix(config) + (f"branches/{branch}/" if branch else "")
        self.prefix = base + "cache/"

    def where(self) -> str:
        return f"s3://{self.config.aws.bucket}/{self.prefix}"

    def records(self, role: str, key: str = "") -> List[Record]:
        prefix = f"{self.prefix}{role}/" + (f"{key}/" if key else "")
        found = []
        for body in cache_rules.record_texts(self.clients.s3, self.config.aws.bucket, prefix):
            record = parse(body, self.config, self.state_machine, role)
            if record is not None and (not key or record.key == key):
                found.append(record)
        return found

    def available(self, record: Record) -> bool:
        """Every output the record names is still there (`mltp prune` may have removed the run)."""
        return cache_rules.outputs_present(self.clients.s3, record.role, record.outputs)

    def materialize(self, record: Record) -> None:
        """Nothing to do: the outputs are where the record says."""

    def copy_into(self, record: Record, outputs: Dict[str, str]) -> Copied:
        """Server-side copies (CopyObject; boto3's managed copy switches to a
        multipart copy for large objects, as S3 requires above 5 GB) of a
        default-branch record's outputs to `outputs`, a branch run's own
        locations (own_outputs). Made with the build's credentials, before the
        run starts: the branch's jobs then read only their own run's folder."""
        from boto3.s3.transfer import TransferConfig

        s3 = self.clients.s3
        extra = {}
        if self.config.aws.kms_key_id:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.config.aws.kms_key_id}
        transfer = TransferConfig(multipart_threshold=COPY_PART_BYTES, multipart_chunksize=COPY_PART_BYTES)
        started = time.monotonic()
        objects = size = 0
        for name in DATA_KEYS[record.role]:
            source_bucket, source = _split(record.outputs[name])
            target_bucket, target = _split(outputs[name])
            listed = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source_bucket, Prefix=source):
                listed += [(item["Key"], int(item.get("Size", 0))) for item in page.get("Contents", [])]
            pairs = _copy_pairs(source, target, listed)
            if not pairs:  # removed since the plan found it (`mltp prune`, by hand)
                raise FileNotFoundError(f"{record.outputs[name]} holds nothing to copy")
            for key, to, length in pairs:
                s3.copy({"Bucket": source_bucket, "Key": key}, target_bucket, to, ExtraArgs=dict(extra),
                        Config=transfer)
                objects, size = objects + 1, size + length
        return Copied(objects, size, time.monotonic() - started)

    def write(self, record: Record) -> str:
        key = f"{self.prefix}{record.role}/{record.key}/{record.run}.json"
        kwargs = {}
        if self.config.aws.kms_key_id:
            kwargs = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.config.aws.kms_key_id}
        self.clients.s3.put_object(Bucket=self.config.aws.bucket, Key=key, Body=record.to_json().encode("utf-8"),
                                   ContentType="application/json", **kwargs)
        return f"s3://{self.config.aws.bucket}/{key}"


# --------------------------------------------------------------------------- local runs


class LocalIndex:
    """The records and the outputs they name, under the repo's .mltp/cache/.
    `clients`: the emulator's, to copy outputs out of (write) and back (materialize)."""

    def __init__(self, config: Config, state_machine: str, clients=None):
        self.config, self.state_machine, self.clients = config, state_machine, clients
        self.root = Path(config.repo) / ".mltp" / "cache" / state_machine

    def where(self) -> str:
        return f".mltp/cache/{self.state_machine}/"

    def records(self, role: str, key: str = "") -> List[Record]:
        base = self.root / role
        if key:
            base = base / key
        if not base.is_dir():
            return []
        found = []
        for path in sorted(base.rglob("*.json")):
            if path.is_symlink() or not path.is_file() or path.parent.parent != self.root / role:
                continue
            record = parse(path.read_text(encoding="utf-8", errors="replace"), self.config, self.state_machine, role)
            if record is not None and record.key == path.parent.name and record.run == path.stem:
                found.append(record)
        return found

    def _files(self, record: Record) -> Path:
        return self.root / record.role / record.key / record.run

    def available(self, record: Record) -> bool:
        folder = self._files(record)
        return all((folder / str(i)).is_dir() and any((folder / str(i)).rglob("*"))
                   for i, _ in enumerate(DATA_KEYS[record.role]))

    def materialize(self, record: Record, outputs: Optional[Dict[str, str]] = None) -> Copied:
        """The kept outputs uploaded into the emulator's S3 where the record says
        they are, or, for a default-branch hit of a branch run, at `outputs`
        (the branch run's own locations, own_outputs)."""
        folder = self._files(record)
        s3 = self.clients.s3
        started = time.monotonic()
        objects = size = 0
        for i, name in enumerate(DATA_KEYS[record.role]):
            bucket, key = _split((outputs or record.outputs)[name])
            local = folder / str(i)
            for path in sorted(p for p in local.rglob("*") if p.is_file() and not p.is_symlink()):
                rel = path.relative_to(local).as_posix()
                target = key + rel if key.endswith("/") else key
                put_file(s3, path, bucket, target)
                objects, size = objects + 1, size + path.stat().st_size
        return Copied(objects, size, time.monotonic() - started)

    def copy_into(self, record: Record, outputs: Dict[str, str]) -> Copied:
        """A default-branch hit of a local branch run: its kept files, into the
        branch run's own folder in the emulator's S3."""
        if not self.available(record):  # removed since the plan found it (`mltp clean`, by hand)
            raise FileNotFoundError(f"{self.where()}{record.role}/{record.key}/{record.run}/ holds nothing to copy")
        return self.materialize(record, outputs)

    def write(self, record: Record) -> str:
        """Copies the step's outputs out of the emulator's S3, then writes the record
        (last: a record always has its files)."""
        from . import owned

        folder = self._files(record)
        partial = folder.with_name(f".{record.run}.partial")
        owned.owned_dir(self.config.repo, "cache")  # a symlinked .mltp/cache is refused
        if partial.exists():
            owned.remove(partial, self.root)
        s3 = self.clients.s3
        for i, name in enumerate(DATA_KEYS[record.role]):
            bucket, key = _split(record.outputs[name])
            target = partial / str(i)
            target.mkdir(parents=True, exist_ok=True)
            download_prefix(s3, bucket, key, target)
        if folder.exists():
            owned.remove(folder, self.root)
        os.replace(partial, folder)
        path = folder.with_name(f"{record.run}.json")
        owned.write_atomic(path, record.to_json().encode("utf-8"))
        return str(path.relative_to(self.config.repo))


# --------------------------------------------------------------------------- default-branch hits on a branch


def default_index(index):
    """The default branch's index beside `index` (a branch's or pull request's),
    which a branch run reads after its own; None for the default branch's own
    index: the default branch never reads a branch's records."""
    if not naming.branch_of(index.config, index.state_machine):
        return None
    if isinstance(index, LocalIndex):
        return LocalIndex(index.config, index.config.name, index.clients)
    return S3Index(index.clients, index.config, index.config.name)


def own_outputs(config: Config, state_machine: str, run: str, role: str) -> Dict[str, str]:
    """The values `role` hands on in this run when it runs itself (the run's own
    folder): where a default-branch hit's outputs are copied to."""
    values = naming.execution_input(config, state_machine, run, "0" * 64, register=False).to_dict()
    return {k: str(values[k]) for k in OUTPUT_KEYS[role]}


def _copy_pairs(source: str, target: str, listed: List[Tuple[str, int]]) -> List[Tuple[str, str, int]]:
    """(source key, target key, size): a prefix's objects under the target prefix, with
    their relative keys (folder markers and `..` skipped), or one object to one key."""
    if not source.endswith("/"):
        return [(key, target, size) for key, size in listed if key == source]
    out = []
    for key, size in listed:
        rel = key[len(source):]
        if rel and not rel.endswith("/") and ".." not in rel.split("/"):
            out.append((key, target + rel, size))
    return out


def newest(records: List[Record]) -> Optional[Record]:
    return max(records, key=lambda r: r.finished_at) if records else None
