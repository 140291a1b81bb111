"""The evaluation job's entry point: checks around evaluation.py that make a run
end the same way on AWS and locally (issue 9; the outcome table is in docs/runs-and-reports.md).

This file is shipped in every code bundle as `.mltp/evaluation_guard.py`, and the
evaluation processing job runs `python3 .mltp/evaluation_guard.py evaluation.py
[args]` instead of `python3 evaluation.py [args]`. Before the script, it refuses
a model artifact without a single file in it (a train.py that wrote nothing to
$SM_MODEL_DIR: SageMaker still uploads an empty model.tar.gz, which would be
gated and registered). After it, it refuses a missing, oversized or non-JSON
evaluation.json, naming the file and the limit: on AWS an oversized file would
otherwise fail ReadEvaluation with a bare States.DataLimitExceeded.

Each refusal is one line starting with 'mltp: ' and exit code 1, so the job
fails (exit 4; the job's last log line says why). What evaluation.json *says*
is the gate's business: a missing or non-numeric metric fails the gate (exit 3)
on both paths; only a metric section that is not an object is refused here, since
the state machine could not merge it (gate.merge_states). The local run executes this very command, so both paths share
the code. It runs inside SageMaker's framework containers: Python 3.6+, stdlib
only, no f-strings with '=' or other newer syntax.
"""

import json
import os
import runpy
import sys
import tarfile

# Step Functions holds at most 256 KiB of state per run; the report joins the
# job ARNs and the registration result there, so evaluation.json gets half.
EVALUATION_LIMIT = 128 * 1024
# What mltp reads of an evaluation.json afterwards (the run's own, and each
# registered version's for the report's history): never more than this.
READ_LIMIT = 1024 * 1024
SHIPPED_AS = ".mltp/evaluation_guard.py"
EXAMPLE = '{"metrics": {"auc": {"value": 0.94}}}'
# The metric sections the gate reads (gate.SECTIONS; this file runs in the containers
# without mltp installed, so the names are repeated here, and a test checks they agree).
SECTIONS = ("metrics", "regression_metrics", "binary_classification_metrics", "multiclass_classification_metrics")


def refuse(message):
    sys.stderr.write("mltp: " + message + "\n")
    sys.stderr.flush()
    sys.exit(1)


def check_model(model_dir):
    path = os.path.join(model_dir, "model.tar.gz")
    try:
        with tarfile.open(path) as tar:
            if not any(member.isfile() for member in tar):
                refuse("the training script wrote no model: model.tar.gz holds no file "
                       "(save the model under $SM_MODEL_DIR); nothing is evaluated or registered")
    except (OSError, tarfile.TarError) as exc:
        refuse("cannot read the model artifact model.tar.gz: %s" % exc)


def decode(raw, limit):
    """(text, None) for the bytes of an evaluation.json, or (None, why not):
    over `limit` bytes, or not UTF-8. Shared with mltp's own readers (gate.read_evaluation)."""
    if len(raw) > limit:
        return None, "is over the limit of %d KiB" % (limit // 1024)
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, "is not UTF-8 text (byte %d is 0x%02x)" % (exc.start, raw[exc.start])


def loads(text):
    """json.loads, with nesting too deep for the parser (RecursionError) refused
    as a ValueError like any other unreadable JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to read")


def check_evaluation(output_dir, name):
    path = os.path.join(output_dir, "evaluation.json")
    if not os.path.isfile(path):
        refuse("%s wrote no evaluation.json (expected at $MLTP_OUTPUT_DIR/evaluation.json)" % name)
    size = os.path.getsize(path)
    if size > EVALUATION_LIMIT:
        refuse("evaluation.json written by %s is %d bytes, over the limit of %d KiB (Step Functions keeps it "
               "in the run's state); write only the metrics to it" % (name, size, EVALUATION_LIMIT // 1024))
    with open(path, "rb") as handle:
        text, why = decode(handle.read(), EVALUATION_LIMIT)
    if why:
        refuse("evaluation.json written by %s %s; expected e.g. %s" % (name, why, EXAMPLE))
    try:
        data = loads(text)
    except ValueError as exc:
        refuse("evaluation.json written by %s is not valid JSON (%s); expected e.g. %s" % (name, exc, EXAMPLE))
    if not isinstance(data, dict):
        refuse("evaluation.json written by %s must be a JSON object like %s" % (name, EXAMPLE))
    for section in SECTIONS:
        # The state machine merges the sections (States.JsonMerge), which takes objects only.
        if section in data and not isinstance(data[section], dict):
            refuse("evaluation.json written by %s: \"%s\" must be an object like %s, not %s"
                   % (name, section, EXAMPLE, json.dumps(data[section])[:80]))


def main(argv):
    if len(argv) < 2:
        refuse("usage: evaluation_guard.py SCRIPT [ARGS...]")
    script = argv[1]
    check_model(os.environ.get("MLTP_MODEL_DIR", ""))
    sys.argv = argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise
    check_evaluation(os.environ.get("MLTP_OUTPUT_DIR", ""), os.path.basename(script))


if __name__ == "__main__":
    main(sys.argv)
