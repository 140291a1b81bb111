"""Preprocessing's outputs, training's channels and evaluation's test data
(docs/contract.md, 3.2 to 3.4): what config.yaml says, resolved with the
defaults, and the checks a schema cannot express (a channel or test_from that
names no output, an S3 channel inside the model's own area).

The defaults keep what mltp always did: outputs train, validation and test at
/opt/ml/processing/output/<name>; training gets every output except test as a
channel of the same name; evaluation gets the output named test. A config with
no `test` output names the evaluation's data with steps.evaluation.test_from;
without it validation refuses, since an evaluation without test data is almost
always a preprocessing that forgot to write it.
"""

from typing import Any, Dict, List, Optional, Tuple

from .. import retrain_loop
from ..config_schema import DEFAULT_OUTPUTS
from ..yaml_source import Document, Problem, key_path, printable
from .display import _suggest
from .model import OUTPUT_DIR, ChannelConfig

TEST_OUTPUT = "test"  # the output evaluation reads, and training does not, by default


def output_paths(raw: Any) -> Dict[str, str]:
    """name -> container path, in the file's order. `raw` is the mapping
    (a null path: the default) or the list of names; None: the defaults."""
    if raw is None:
        raw = list(DEFAULT_OUTPUTS)
    if isinstance(raw, list):
        return {name: f"{OUTPUT_DIR}/{name}" for name in raw}
    return {name: path or f"{OUTPUT_DIR}/{name}" for name, path in raw.items()}


def channels(raw: Any, outputs: Dict[str, str]) -> Tuple[ChannelConfig, ...]:
    """Every channel, in the file's order; the default (raw None) is every
    output except test, each as a channel of its own name."""
    if raw is None:
        return tuple(ChannelConfig(name, output=name) for name in outputs if name != TEST_OUTPUT)
    if isinstance(raw, list):
        return tuple(ChannelConfig(name, output=name) for name in raw)
    out = []
    for name, value in raw.items():
        spec = value if isinstance(value, dict) else {"source": value}
        source = spec["source"]
        s3 = source.startswith("s3://")
        out.append(ChannelConfig(name, output=None if s3 else source, s3_uri=source if s3 else None,
                                 content_type=spec.get("content_type"), local=spec.get("local")))
    return tuple(out)


def test_from(raw: Any, outputs: Dict[str, str]) -> Optional[str]:
    """The output evaluation reads as its test data: test_from, else `test`."""
    if isinstance(raw, str):
        return raw
    return TEST_OUTPUT if TEST_OUTPUT in outputs else None


# --------------------------------------------------------------------------- checks


def _get(value: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def problems(doc: Document) -> List[Problem]:
    """A channel or test_from naming no output; training left with no channel by
    the default; no test data for evaluation; an S3 channel in the model's own area."""
    data = doc.value if isinstance(doc.value, dict) else {}
    raw_outputs = _get(data, "steps", "preprocessing", "outputs")
    if raw_outputs is not None and not isinstance(raw_outputs, (dict, list)):
        return []  # the schema reports it
    if isinstance(raw_outputs, list) and not all(isinstance(n, str) for n in raw_outputs) or raw_outputs in ({}, []):
        return []  # the schema reports it
    outputs = output_paths(raw_outputs)
    known = list(outputs)
    out: List[Problem] = []

    def add(path: Tuple[Any, ...], message: str) -> None:
        out.append(Problem(doc.line_of(path), key_path(path), message))

    def unknown(name: str) -> str:
        return (f"'{printable(name)}' is not an output of steps.preprocessing.outputs; it must be one of "
                f"{', '.join(known)}{_suggest(name, known)}")

    base = ("steps", "training", "channels")
    raw_channels = _get(data, *base)
    if isinstance(raw_channels, list):
        for index, name in enumerate(raw_channels):
            if isinstance(name, str) and name not in outputs:
                add(base + (index,), unknown(name))
    elif isinstance(raw_channels, dict):
        aws = data.get("aws") if isinstance(data.get("aws"), dict) else {}
        bucket, prefix, model = aws.get("bucket"), aws.get("prefix", retrain_loop.DEFAULT_PREFIX), data.get("name")
        for name, value in raw_channels.items():
            source = value.get("source") if isinstance(value, dict) else value
            path = base + (name, "source") if isinstance(value, dict) else base + (name,)
            if not isinstance(source, str):
                continue
            if not source.startswith("s3://"):
                if source not in outputs:
                    add(path, unknown(source))
                elif isinstance(value, dict) and "local" in value:
                    add(base + (name, "local"), "local serves an s3:// source in a local run; this channel reads "
                                                f"the output '{printable(source)}', which preprocessing writes")
            elif all(isinstance(v, str) for v in (bucket, prefix, model)) and \
                    retrain_loop.overlaps(source, bucket, prefix, model):
                # Runs, registered versions, code and branches live there: a pull
                # request must not read the default branch's through a channel.
                add(path, retrain_loop.inside_own_area(source, bucket, prefix, model,
                                                       "name the preprocessing output instead, or data outside that area"))
    elif raw_channels is None and known and not any(name != TEST_OUTPUT for name in known):
        add(("steps", "preprocessing", "outputs"),
            "training gets every output except test as a channel, and there is none: "
            "add an output such as train, or set steps.training.channels")

    chosen = _get(data, "steps", "evaluation", "test_from")
    if isinstance(chosen, str):
        if chosen not in outputs:
            add(("steps", "evaluation", "test_from"), unknown(chosen))
    elif chosen is None and TEST_OUTPUT not in outputs:
        add(("steps", "preprocessing", "outputs"),
            f"there is no output named test for the evaluation's test data; set steps.evaluation.test_from "
            f"to one of {', '.join(known)}")
    return out
