"""Training step (SageMaker script mode).

Hyperparameters arrive as --key value arguments (and as JSON in $SM_HPS).
Reads  $SM_CHANNEL_TRAIN      (default /opt/ml/input/data/train)
       $SM_CHANNEL_VALIDATION (default /opt/ml/input/data/validation)
Writes $SM_MODEL_DIR/model.joblib (default /opt/ml/model); SageMaker packs
       that folder into model.tar.gz.
"""
import os
import sys

# Make the repo's own modules (fraud/) importable wherever the code runs from.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import json  # noqa: E402

import joblib  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from fraud.features import FEATURES, SEED, read_labelled  # noqa: E402

MODEL_FILE = "model.joblib"


def fail(message):
    print("train: error: %s" % message, file=sys.stderr)
    sys.exit(2)


def optional_int(value):
    """An int, or None for 'none'/'null'/'' (e.g. max_depth: null)."""
    if value is None or str(value).strip().lower() in ("", "none", "null"):
        return None
    return int(float(value))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max_iter", "--max-iter", type=int, default=200)
    p.add_argument("--learning_rate", "--learning-rate", type=float, default=0.1)
    p.add_argument("--max_depth", "--max-depth", type=optional_int, default=6)
    p.add_argument("--max_leaf_nodes", "--max-leaf-nodes", type=optional_int, default=31)
    p.add_argument("--min_samples_leaf", "--min-samples-leaf", type=int, default=20)
    p.add_argument("--l2_regularization", "--l2-regularization", type=float, default=0.0)
    p.add_argument("--random_state", "--random-state", type=int, default=SEED)
    p.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    p.add_argument("--validation",
                   default=os.environ.get("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation"))
    p.add_argument("--model_dir", "--model-dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    args, unknown = p.parse_known_args(argv)
    if unknown:
        print("train: ignoring unknown arguments: %s" % " ".join(unknown))
    return args



def main():
    args = parse_args()
    if os.environ.get("SM_HPS"):
        print("train: SM_HPS=%s" % os.environ["SM_HPS"])
    params = dict(
        max_iter=args.max_iter,
        learning_rate=args.learning_rate,
        max_depth=args.max_depth,
        max_leaf_nodes=args.max_leaf_nodes,
        min_samples_leaf=args.min_samples_leaf,
        l2_regularization=args.l2_regularization,
        random_state=args.random_state,
        early_stopping=False,  # fixed number of iterations: reproducible
    )
    print("train: hyperparameters %s" % json.dumps(params, sort_keys=True))

    x_train, y_train = read_labelled(args.train, "train", "$SM_CHANNEL_TRAIN", fail)
    x_val, y_val = read_labelled(args.validation, "validation", "$SM_CHANNEL_VALIDATION", fail)
    print("train: %d training rows, %d validation rows" % (len(x_train), len(x_val)))

    model = HistGradientBoostingClassifier(**params)
    model.fit(x_train, y_train)

    auc = roc_auc_score(y_val, model.predict_proba(x_val)[:, 1])
    print("train: validation auc = %.4f" % auc)
    # A line SageMaker metric definitions can pick up: validation:auc=0.9xxx
    print("validation:auc=%.6f" % auc)

    os.makedirs(args.model_dir, exist_ok=True)
    path = os.path.join(args.model_dir, MODEL_FILE)
    joblib.dump(model, path)
    print("train: model written to %s" % path)


# --- Inference hooks for the SageMaker scikit-learn serving container --------

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, MODEL_FILE))


def predict_fn(input_data, model):
    """Fraud probability per row; accepts rows of the eight features, in order."""
    frame = pd.DataFrame(input_data, columns=FEATURES) if not isinstance(input_data, pd.DataFrame) \
        else input_data[FEATURES]
    return model.predict_proba(frame)[:, 1]


if __name__ == "__main__":
    main()
