"""Retraining must never watch the model's own S3 area.

Every run writes under `s3://<bucket>/<prefix>/<name>/` (code, runs, the
trigger's state). A `retrain.on_inputs` input whose source covers that area, or
lies inside it, would see each retrain's own writes as new data and start the
next retrain: a loop without end. S3 prefixes match as plain strings (the
notification filter `mltp/fr` matches `mltp/fraud/...`), so two prefixes
overlap when either one starts with the other; an input with no key at all
watches the whole bucket.

The trigger's handler repeats the check on every object (`trigger_handler.watched`)
as a second line of defence, for a function installed before this rule.
"""

from typing import Any, List

from .yaml_source import Document, Problem, key_path, printable

DEFAULT_PREFIX = "mltp"  # config_schema's default for aws.prefix


def own_area(bucket: str, prefix: str, name: str) -> str:
    """The model's own S3 area as `bucket/key-prefix/`."""
    return f"{bucket}/{prefix}/{name}/"


def overlaps(source: str, bucket: str, prefix: str, name: str) -> bool:
    """Whether the S3 URI `source` and the model's own area share any key."""
    source_bucket, _, key = source[len("s3://"):].partition("/")
    if source_bucket != bucket:
        return False
    area = f"{prefix}/{name}/"
    return area.startswith(key) or key.startswith(area)


def inside_own_area(source: str, bucket: str, prefix: str, name: str, instead: str) -> str:
    """Why an S3 source a job reads may not overlap the model's own area: runs,
    registered versions, code and branches live there, and a pull request must
    not read the default branch's through its config."""
    return (f"'{printable(source)}' overlaps the model's own S3 area s3://{printable(own_area(bucket, prefix, name))} "
            f"(code, runs, the registry): {instead}")


def source_problems(doc: Document) -> List[Problem]:
    """One problem per preprocessing input whose source overlaps the model's own area."""
    data: Any = doc.value
    if not isinstance(data, dict):
        return []
    aws = data.get("aws") if isinstance(data.get("aws"), dict) else {}
    bucket, prefix, name = aws.get("bucket"), aws.get("prefix", DEFAULT_PREFIX), data.get("name")
    steps = data.get("steps") if isinstance(data.get("steps"), dict) else {}
    preprocessing = steps.get("preprocessing") if isinstance(steps.get("preprocessing"), dict) else {}
    inputs = preprocessing.get("inputs")
    if not all(isinstance(v, str) for v in (bucket, prefix, name)) or not isinstance(inputs, list):
        return []
    out = []
    for index, item in enumerate(inputs):
        source = item.get("source") if isinstance(item, dict) else None
        if isinstance(source, str) and source.startswith("s3://") and overlaps(source, bucket, prefix, name):
            path = ("steps", "preprocessing", "inputs", index, "source")
            out.append(Problem(doc.line_of(path), key_path(path), inside_own_area(
                source, bucket, prefix, name, "read data from outside that area")))
    return out


def problems(doc: Document) -> List[Problem]:
    """One problem per watched input that overlaps the model's own area."""
    data: Any = doc.value
    if not isinstance(data, dict) or not isinstance(data.get("retrain"), dict):
        return []
    aws = data.get("aws") if isinstance(data.get("aws"), dict) else {}
    bucket, prefix, name = aws.get("bucket"), aws.get("prefix", DEFAULT_PREFIX), data.get("name")
    names = data["retrain"].get("on_inputs")
    steps = data.get("steps") if isinstance(data.get("steps"), dict) else {}
    preprocessing = steps.get("preprocessing") if isinstance(steps.get("preprocessing"), dict) else {}
    inputs = preprocessing.get("inputs")
    if not all(isinstance(v, str) for v in (bucket, prefix, name)) or not isinstance(names, list) \
            or not isinstance(inputs, list):
        return []
    sources = {i.get("name"): i.get("source") for i in inputs if isinstance(i, dict)}
    out = []
    for index, input_name in enumerate(names):
        source = sources.get(input_name) if isinstance(input_name, str) else None
        if not isinstance(source, str) or not source.startswith("s3://") or not overlaps(source, bucket, prefix, name):
            continue
        path = ("retrain", "on_inputs", index)
        out.append(Problem(doc.line_of(path), key_path(path),
                           f"'{printable(input_name)}' ({printable(source)}) overlaps the model's own S3 area "
                           f"s3://{printable(own_area(bucket, prefix, name))}: "
                           "each retrain's own writes would count as new data and start the next one; "
                           "watch a data prefix outside it"))
    return out
