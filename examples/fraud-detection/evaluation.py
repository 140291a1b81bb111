"""Evaluation step: score the trained model on the test split.

Reads  $MLTP_MODEL_DIR/model.tar.gz (default /opt/ml/processing/model)
       $MLTP_INPUT_DIR/test/*.csv    (default /opt/ml/processing/input)
Writes $MLTP_OUTPUT_DIR/evaluation.json (default /opt/ml/processing/output) in
       mltp's metrics section: {"metrics": {"auc": {"value": ...}, ...}}
"""
import os
import sys

# Make the repo's own modules (fraud/) importable wherever the code was extracted.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import glob  # noqa: E402
import json  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402

import joblib  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from fraud.features import read_labelled  # noqa: E402

MODEL_FILE = "model.joblib"
THRESHOLD = 0.5  # fraud when the predicted probability is at least this


def fail(message):
    print("evaluation: error: %s" % message, file=sys.stderr)
    sys.exit(2)


def extract(archive, into):
    """Extract model.tar.gz, refusing members that would land outside `into`."""
    with tarfile.open(archive, "r:gz") as tar:
        root = os.path.realpath(into)
        for member in tar.getmembers():
            target = os.path.realpath(os.path.join(into, member.name))
            if target != root and not target.startswith(root + os.sep):
                fail("%s: unsafe path in archive: %s" % (archive, member.name))
            if member.issym() or member.islnk():
                fail("%s: links are not allowed in the archive: %s" % (archive, member.name))
        if hasattr(tarfile, "data_filter"):  # Python 3.12+, backported to 3.8.17+/3.9.17+
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)


def load_model(model_dir):
    archive = os.path.join(model_dir, "model.tar.gz")
    if not os.path.isfile(archive):
        fail("model archive %s not found (set $MLTP_MODEL_DIR)" % archive)
    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        extract(archive, tmp)
        found = sorted(glob.glob(os.path.join(tmp, "**", MODEL_FILE), recursive=True))
        if not found:
            fail("%s contains no %s" % (archive, MODEL_FILE))
        return joblib.load(found[0])



def main():
    model_dir = os.environ.get("MLTP_MODEL_DIR", "/opt/ml/processing/model")
    input_dir = os.environ.get("MLTP_INPUT_DIR", "/opt/ml/processing/input")
    output_dir = os.environ.get("MLTP_OUTPUT_DIR", "/opt/ml/processing/output")

    model = load_model(model_dir)
    x_test, y_test = read_labelled(os.path.join(input_dir, "test"), "test", "$MLTP_INPUT_DIR", fail)

    score = model.predict_proba(x_test)[:, 1]
    pred = (score >= THRESHOLD).astype(int)
    tn, fp, fn, tp = confusion_matrix(y_test, pred, labels=[0, 1]).ravel()

    values = [
        ("auc", roc_auc_score(y_test, score)),
        ("average_precision", average_precision_score(y_test, score)),
        ("false_positive_rate", fp / float(fp + tn) if fp + tn else 0.0),
        ("precision", precision_score(y_test, pred, zero_division=0)),
        ("recall", recall_score(y_test, pred, zero_division=0)),
        ("f1", f1_score(y_test, pred, zero_division=0)),
        ("accuracy", accuracy_score(y_test, pred)),
    ]
    report = {"metrics": dict((name, {"value": round(float(v), 4)}) for name, v in values)}

    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "evaluation.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print("evaluation: %d test rows (tp=%d fp=%d tn=%d fn=%d)" % (len(y_test), tp, fp, tn, fn))
    print("evaluation: wrote %s: %s" % (path, json.dumps(report["metrics"], sort_keys=False)))


if __name__ == "__main__":
    main()
