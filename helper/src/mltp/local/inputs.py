"""Data for the preprocessing inputs of a local run (docs/contract.md, 8.2).

On AWS each `steps.preprocessing.inputs` item is downloaded from its `source`.
The emulator's S3 starts empty, so a local run puts data there first, at the
very same URI: the state machine, the job request and the download stay as on
AWS. The data comes from, in this order:

1. `mltp run --local --input NAME=PATH` (a file or a folder);
2. the input's `local` key in config.yaml (relative to the repo, or absolute);
3. with `--fetch-inputs`, a copy of the real `source`, made with the user's
   own credentials into `.mltp/inputs/<name>/` (a training channel's into
   `.mltp/channels/<name>/`: a channel may share an input's name, not its data)
   *before* the emulator starts
   and before `session.LocalAws` swaps the credentials for the emulator's dummies:
   the emulator never sees the real ones.

An input with none of these stops the run at validation (exit 2), naming the
input and its URI: failing later with the emulator's NoSuchBucket would name
neither.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import click

from .. import owned
from . import objects
from ..config import Config, InputConfig, display
from ..errors import InvalidInput

CACHE = Path(".mltp") / "inputs"
CHANNEL_CACHE = Path(".mltp") / "channels"


@dataclass(frozen=True)
class LocalInput:
    item: InputConfig
    path: Path  # a file or a folder on this machine
    origin: str  # where it came from, for the log: --input, config.yaml, S3


def parse_overrides(pairs: Sequence[str]) -> Dict[str, str]:
    """NAME=PATH pairs of `--input`, as given; each NAME once."""
    out: Dict[str, str] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise InvalidInput(f"--input {pair}: expected NAME=PATH (an input of steps.preprocessing.inputs and a file or folder)")
        if name in out:
            raise InvalidInput(f"--input {name}=...: given twice")
        out[name] = path
    return out


def resolve(config: Config, overrides: Dict[str, str], fetch: bool) -> Tuple[List[LocalInput], List[InputConfig]]:
    """Each input's local data, and the inputs left to fetch from S3. Raises
    InvalidInput (exit 2) for an unknown NAME, a missing PATH, or an input with
    no local data and no --fetch-inputs."""
    items = config.steps.preprocessing.inputs
    names = [item.name for item in items]
    for name in overrides:
        if name not in names:
            known = f"one of {', '.join(names)}" if names else "an input, but steps.preprocessing.inputs is empty"
            raise InvalidInput(f"--input {name}=...: '{name}' is not an input of steps.preprocessing.inputs; it must be {known}")
    found: List[LocalInput] = []
    to_fetch: List[InputConfig] = []
    problems: List[str] = []
    for item, key in [(item, f"steps.preprocessing.inputs[{index}]") for index, item in enumerate(items)] + \
            _channel_inputs(config):
        if key.startswith("steps.preprocessing.") and item.name in overrides:
            path, origin, where = Path(overrides[item.name]).expanduser(), "--input", f"--input {item.name}"
        elif item.local:
            path = Path(item.local).expanduser()
            path = path if path.is_absolute() else config.repo / path
            origin = where = config.where(f"{key}.local")
        elif fetch:
            to_fetch.append(item)
            continue
        else:
            what = "input" if key.startswith("steps.preprocessing.") else "channel"
            override = f", pass --input {item.name}=PATH" if what == "input" else ""
            source_key = f"{key}.source" if config.line_of(f"{key}.source") else key
            problems.append(f"{config.where(source_key)}: {key}: {what} '{item.name}' ({item.source}) has no data "
                            f"for a local run: set {key}.local{override}, or --fetch-inputs "
                            "to copy it from S3 with your AWS credentials")
            continue
        if not (path.is_file() or path.is_dir()):
            problems.append(f"{where}: input '{item.name}': {display(path)} is not a file or folder")
            continue
        found.append(LocalInput(item, path.resolve(), origin))
    if problems:
        if len(problems) == 1:
            raise InvalidInput(problems[0])
        raise InvalidInput(f"{len(problems)} inputs have no local data", problems)
    return found, to_fetch


def _channel_inputs(config: Config) -> List[Tuple[InputConfig, str]]:
    """The training channels that read S3 directly (steps.training.channels with an
    s3:// source), as inputs of their own: a local run serves them the same way."""
    return [(InputConfig(channel.name, channel.s3_uri, local=channel.local), f"steps.training.channels.{channel.name}")
            for channel in config.steps.training.channels if channel.s3_uri]


def copy_folder(config: Config, item: InputConfig) -> Path:
    """Where `--fetch-inputs` keeps the copy of `item`: `.mltp/inputs/<name>/` for
    a preprocessing input, `.mltp/channels/<name>/` for a training channel that
    reads S3 (an item resolve() made from a channel). A symlinked folder on the
    way is refused (exit 2), not written through."""
    channel = item not in config.steps.preprocessing.inputs
    return owned.owned_dir(config.repo, (CHANNEL_CACHE if channel else CACHE).name) / item.name


def fetch(clients, items: Sequence[InputConfig], config: Config) -> List[LocalInput]:
    """Copies each input's real S3 data to its copy_folder with `clients`
    (the user's credentials). Runs before the emulator starts. The folder is
    replaced whole, so it holds exactly what S3 holds now."""
    from ..aws import refused
    from .runner import split_s3

    out: List[LocalInput] = []
    for item in items:
        bucket, prefix = split_s3(item.source)
        target = copy_folder(config, item)
        cache = target.parent
        partial = target.with_name(f".{item.name}.partial")
        owned.remove(partial, cache)
        partial.mkdir(parents=True)
        count = 0
        s3 = clients.s3
        with refused("--fetch-inputs: reading input", f"'{item.name}' at {item.source}"):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for entry in page.get("Contents", []):
                    key = entry["Key"]
                    if key.endswith("/"):
                        continue
                    rel = key[len(prefix):].lstrip("/") or key.rsplit("/", 1)[-1]
                    dest = partial / rel
                    if ".." in Path(rel).parts or not str(dest.resolve()).startswith(str(partial.resolve())):
                        continue  # a key that would land outside the cache
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    s3.download_file(bucket, key, str(dest))
                    count += 1
        # Nothing there is kept as nothing: the Preprocessing job then fails as on AWS (exit 4).
        owned.remove(target, cache)
        partial.replace(target)
        click.echo(f"local: fetched {count} object{'s' if count != 1 else ''} of input '{item.name}' from "
                   f"{item.source} into {display(target)}")
        out.append(LocalInput(item, target, "S3"))
    return out


def stage(clients, inputs: Sequence[LocalInput], region: str, existing: Sequence[str]) -> None:
    """Uploads each input's data into the emulator's S3 at its `source` URI,
    creating the bucket there when needed. A folder's files keep their relative
    paths under the prefix; a single file lands at the URI itself when that names
    an object (no trailing '/'), else under the prefix by its file name."""
    from .runner import split_s3

    made = set(existing)
    for local in inputs:
        bucket, prefix = split_s3(local.item.source)
        if bucket not in made:
            kwargs: Dict[str, object] = {"Bucket": bucket}
            if region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            clients.s3.create_bucket(**kwargs)
            made.add(bucket)
        files = _files(local.path)
        for path, rel in files:
            if local.path.is_file() and prefix and not prefix.endswith("/"):
                key = prefix
            else:
                key = (prefix.rstrip("/") + "/" if prefix.rstrip("/") else "") + rel
            objects.put_file(clients.s3, str(path), bucket, key)
        click.echo(f"local: input '{local.item.name}': {len(files)} file{'s' if len(files) != 1 else ''} from "
                   f"{display(local.path)} ({local.origin}) at {local.item.source}")


def _files(path: Path) -> List[Tuple[Path, str]]:
    if path.is_file():
        return [(path, path.name)]
    return [(p, p.relative_to(path).as_posix()) for p in sorted(path.rglob("*")) if p.is_file()]


def literal_paths(config: Config) -> List[str]:
    """The container paths a script might spell out, for the fallback notice."""
    from ..definition import container_paths  # light: the SDKs load only when rendering

    pre, ev = config.steps.preprocessing, config.steps.evaluation
    paths = [item.path for item in pre.inputs] + list(container_paths(pre).values()) + list(container_paths(ev).values())
    seen: List[str] = []
    for path in paths:
        if path not in seen:
            seen.append(path)
    return seen


def fallback_notice(config: Config, reason: str) -> Optional[str]:
    return (f"local: no private /opt/ml per job ({reason}): literal paths in the scripts will not work, among them "
            f"{', '.join(literal_paths(config))}, /opt/ml/model and /opt/ml/input/data; the MLTP_* and SM_* variables "
            "point into .mltp/work/ instead\n"
            "local: with no namespace, jobs can write the shared local environments on this agent: each is checked "
            "against its install record before and after every job, and one a job changed fails that job and is "
            "built again before anything uses it")
