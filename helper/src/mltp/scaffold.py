"""`mltp init`: a new model repo that works before anyone edits it.

The three scripts generate their own data (numpy only, fixed seed), so
`mltp run DIR --local` passes right after `init`; a data scientist then swaps
in real data and a real model one script at a time. Nothing is overwritten:
if any file `init` would write exists, it writes none and says which.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Dict, List, Optional

from .config_schema import DEFAULT_FRAMEWORK_VERSIONS, NAME_MAX
from .errors import InvalidInput

INIT_FRAMEWORKS = ("sklearn", "xgboost")
SCHEMA_FILE = "config.schema.json"


def default_name(directory: Path) -> str:
    """A valid model name from the folder's name: 'My Model_2' -> 'my-model-2'."""
    slug = re.sub(r"[^a-z0-9]+", "-", directory.resolve().name.lower()).strip("-")[:NAME_MAX].strip("-")
    return slug if len(slug) >= 3 else f"model-{slug}".strip("-") if slug else "my-model"


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def files(name: str, framework: str, region: str, bucket: str) -> Dict[str, str]:
    """Every file of the new repo, by relative path."""
    from .config_schema import json_schema

    if framework not in INIT_FRAMEWORKS:
        raise InvalidInput(f"--framework must be one of {', '.join(INIT_FRAMEWORKS)}, not {framework!r}")
    version = DEFAULT_FRAMEWORK_VERSIONS[framework]
    values = {"name": name, "framework": framework, "version": version, "region": region, "bucket": bucket}
    return {
        "config.yaml": CONFIG.format(**values),
        SCHEMA_FILE: json.dumps(json_schema(), indent=2, sort_keys=True) + "\n",
        "preprocessing.py": PREPROCESSING,
        "train.py": TRAIN_SKLEARN if framework == "sklearn" else TRAIN_XGBOOST,
        "evaluation.py": EVALUATION.replace("{load_model}", LOAD_SKLEARN if framework == "sklearn" else LOAD_XGBOOST),
        "requirements.txt": REQUIREMENTS[framework],
        "Jenkinsfile": JENKINSFILE,
        ".gitignore": GITIGNORE,
        ".mltpignore": MLTPIGNORE,
        "README.md": README.format(**values),
    }


def init(directory: Path, name: Optional[str] = None, framework: str = "sklearn", region: Optional[str] = None,
         bucket: Optional[str] = None) -> List[Path]:
    """Write the repo into `directory` (created if needed); refuse to overwrite anything."""
    from .config_schema import SCHEMA

    directory = Path(directory)
    name = name or default_name(directory)
    pattern = SCHEMA["properties"]["name"]["pattern"]
    if not re.match(pattern, name) or not 3 <= len(name) <= NAME_MAX:
        raise InvalidInput(f"--name {name!r} {SCHEMA['properties']['name']['x-error']}")
    region = region or default_region()
    bucket = bucket or f"{name}-mltp"
    if directory.exists() and not directory.is_dir():
        raise InvalidInput(f"{directory} exists and is not a folder")
    content = files(name, framework, region, bucket)
    existing = sorted(p for p in content if (directory / p).exists() or (directory / p).is_symlink())
    if existing:
        raise InvalidInput(f"mltp init writes nothing: {len(existing)} file(s) exist already in {directory}",
                           [f"{directory / p}: exists; move it away or choose another folder" for p in existing])
    written = []
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in content.items():
        target = directory / path
        with open(target, "x", encoding="utf-8") as handle:  # 'x': never overwrite, even in a race
            handle.write(text)
        written.append(target)
    return written


# --------------------------------------------------------------------------- templates

CONFIG = """\
# yaml-language-server: $schema=config.schema.json
# The mltp config (see docs/contract.md). config.schema.json beside it lets editors
# complete and check it (VS Code: the YAML extension); `mltp schema` prints it anew.
version: 1
name: {name}
description: A model started with `mltp init`; it trains on generated data until you change it.

aws:
  region: {region}
  bucket: {bucket}                # must exist; code and run artifacts go under s3://{bucket}/mltp/
  # The two roles the work runs as on AWS (replace with yours; not needed for --local):
  sagemaker_role_arn: arn:aws:iam::123456789012:role/SageMakerExecution
  states_role_arn: arn:aws:iam::123456789012:role/StepFunctionsExecution
  # Where pull requests build: a role of their own, kept away from the default branch's runs
  # branch_sagemaker_role_arn: arn:aws:iam::123456789012:role/SageMakerBranches

steps:
  preprocessing:
    script: preprocessing.py
    framework: {framework}
    framework_version: "{version}"
    instance_type: ml.m5.large
    # To read real data, mount it (the script then reads $MLTP_INPUT_DIR/raw/):
    #   inputs:
    #     - name: raw
    #       source: s3://{bucket}/data/
  training:
    script: train.py
    framework: {framework}
    framework_version: "{version}"
    instance_type: ml.m5.large
    hyperparameters:              # passed to train.py as --key value
      n_estimators: 100
  evaluation:
    script: evaluation.py
    framework: {framework}
    framework_version: "{version}"
    instance_type: ml.m5.large

gate:                             # every rule must hold, or nothing is registered
  - metric: auc
    min: 0.80

registry:
  model_package_group: {name}
  approval_status: PendingManualApproval
"""

PREPROCESSING = '''\
"""Preprocessing: write the train, validation and test splits.

Reads  $MLTP_INPUT_DIR/raw/*.csv when there is such an input (label first, then features);
       otherwise generates a synthetic data set (fixed seed), so the repo runs as it is.
Writes $MLTP_OUTPUT_DIR/{train,validation,test}/<split>.csv, label in the first column.
"""
import glob
import os

import numpy as np

SEED = 42
FEATURES = ["f0", "f1", "f2", "f3", "f4", "f5"]


def generated(rows=3000):
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(rows, len(FEATURES)))
    logits = 1.5 * x[:, 0] - 1.0 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + rng.normal(scale=0.8, size=rows)
    y = (logits > 0.3).astype(float)
    return np.column_stack([y, x])


def read_raw(folder):
    paths = sorted(glob.glob(os.path.join(folder, "*.csv")))
    return np.vstack([np.loadtxt(p, delimiter=",", skiprows=1, ndmin=2) for p in paths]) if paths else None


def main():
    input_dir = os.environ.get("MLTP_INPUT_DIR", "/opt/ml/processing/input")
    output_dir = os.environ.get("MLTP_OUTPUT_DIR", "/opt/ml/processing/output")
    data = read_raw(os.path.join(input_dir, "raw"))
    if data is None:
        data = generated()
        print("preprocessing: no raw input, generated %d rows" % len(data))
    rng = np.random.default_rng(SEED)
    data = data[rng.permutation(len(data))]
    cut1, cut2 = int(len(data) * 0.7), int(len(data) * 0.85)
    header = ",".join(["label"] + FEATURES)
    for split, rows in (("train", data[:cut1]), ("validation", data[cut1:cut2]), ("test", data[cut2:])):
        folder = os.path.join(output_dir, split)
        os.makedirs(folder, exist_ok=True)
        np.savetxt(os.path.join(folder, split + ".csv"), rows, delimiter=",", header=header, comments="", fmt="%.6g")
        print("preprocessing: %s: %d rows" % (split, len(rows)))


if __name__ == "__main__":
    main()
'''

TRAIN_SKLEARN = '''\
"""Training (SageMaker script mode): fit a scikit-learn model.

Hyperparameters arrive as --key value. Reads $SM_CHANNEL_TRAIN and
$SM_CHANNEL_VALIDATION; writes $SM_MODEL_DIR/model.joblib (packed into model.tar.gz).
"""
import argparse
import glob
import os

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score


def load(folder):
    rows = np.vstack([np.loadtxt(p, delimiter=",", skiprows=1, ndmin=2) for p in sorted(glob.glob(os.path.join(folder, "*.csv")))])
    return rows[:, 1:], rows[:, 0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n_estimators", type=int, default=100)
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    parser.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation"))
    parser.add_argument("--model_dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    args, _ = parser.parse_known_args()
    x, y = load(args.train)
    model = RandomForestClassifier(n_estimators=args.n_estimators, random_state=42, n_jobs=1).fit(x, y)
    x_val, y_val = load(args.validation)
    print("train: validation auc = %.4f" % roc_auc_score(y_val, model.predict_proba(x_val)[:, 1]))
    os.makedirs(args.model_dir, exist_ok=True)
    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))


# The SageMaker scikit-learn serving container loads the model with this.
def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


if __name__ == "__main__":
    main()
'''

TRAIN_XGBOOST = '''\
"""Training (SageMaker script mode): fit an XGBoost model.

Hyperparameters arrive as --key value. Reads $SM_CHANNEL_TRAIN and
$SM_CHANNEL_VALIDATION; writes $SM_MODEL_DIR/model.json (packed into model.tar.gz).
"""
import argparse
import glob
import os

import numpy as np
import xgboost as xgb


def load(folder):
    rows = np.vstack([np.loadtxt(p, delimiter=",", skiprows=1, ndmin=2) for p in sorted(glob.glob(os.path.join(folder, "*.csv")))])
    return rows[:, 1:], rows[:, 0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n_estimators", type=int, default=100)
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    parser.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation"))
    parser.add_argument("--model_dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    args, _ = parser.parse_known_args()
    x, y = load(args.train)
    x_val, y_val = load(args.validation)
    model = xgb.XGBClassifier(n_estimators=args.n_estimators, max_depth=4, random_state=42, n_jobs=1)
    model.fit(x, y, eval_set=[(x_val, y_val)], verbose=False)
    os.makedirs(args.model_dir, exist_ok=True)
    model.save_model(os.path.join(args.model_dir, "model.json"))


# The SageMaker XGBoost serving container loads the model with this.
def model_fn(model_dir):
    model = xgb.XGBClassifier()
    model.load_model(os.path.join(model_dir, "model.json"))
    return model


if __name__ == "__main__":
    main()
'''

LOAD_SKLEARN = '''def load_model(folder):
    import joblib

    return joblib.load(os.path.join(folder, "model.joblib"))'''

LOAD_XGBOOST = '''def load_model(folder):
    import xgboost as xgb

    model = xgb.XGBClassifier()
    model.load_model(os.path.join(folder, "model.json"))
    return model'''

EVALUATION = '''\
"""Evaluation: score the model on the test split, write evaluation.json.

Reads  $MLTP_MODEL_DIR/model.tar.gz and $MLTP_INPUT_DIR/test/*.csv
Writes $MLTP_OUTPUT_DIR/evaluation.json: {"metrics": {"auc": {"value": ...}, ...}};
       the gate in config.yaml checks these metrics.
"""
import glob
import json
import os
import tarfile
import tempfile

import numpy as np


{load_model}


def auc(y, scores):
    """Area under the ROC curve (the rank statistic; ties count half)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # average ranks of ties
        same = scores == value
        ranks[same] = ranks[same].mean()
    positives = y == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main():
    model_dir = os.environ.get("MLTP_MODEL_DIR", "/opt/ml/processing/model")
    input_dir = os.environ.get("MLTP_INPUT_DIR", "/opt/ml/processing/input")
    output_dir = os.environ.get("MLTP_OUTPUT_DIR", "/opt/ml/processing/output")
    with tempfile.TemporaryDirectory() as folder:
        with tarfile.open(os.path.join(model_dir, "model.tar.gz")) as tar:
            tar.extractall(folder)
        model = load_model(folder)
    paths = sorted(glob.glob(os.path.join(input_dir, "test", "*.csv")))
    rows = np.vstack([np.loadtxt(p, delimiter=",", skiprows=1, ndmin=2) for p in paths])
    x, y = rows[:, 1:], rows[:, 0]
    scores = model.predict_proba(x)[:, 1]
    metrics = {"auc": auc(y, scores), "accuracy": float(((scores >= 0.5) == (y == 1)).mean())}
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "evaluation.json"), "w") as handle:
        json.dump({"metrics": {name: {"value": round(value, 6)} for name, value in metrics.items()}}, handle, indent=2)
    print("evaluation: %s" % json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
    main()
'''

REQUIREMENTS = {
    "sklearn": "# What the scripts import (the SageMaker scikit-learn container has them all).\nnumpy\nscikit-learn\njoblib\n",
    "xgboost": "# What the scripts import (the SageMaker XGBoost container has them all).\nnumpy\nxgboost\n",
}

JENKINSFILE = """\
@Library('mltp') _
mlTrainingPipeline()
"""

GITIGNORE = """\
# mltp's run folders: reports, local work files, models of local runs
.mltp/
__pycache__/
*.pyc
"""

MLTPIGNORE = """\
# Files never shipped to SageMaker (gitignore syntax)
config.schema.json
README.md
"""

README = """\
# {name}

A model repo for mltp: `preprocessing.py`, `train.py` and `evaluation.py` run as
SageMaker jobs, `config.yaml` says where and with which metric gate
(see docs/contract.md of mltp).

## Quick start

```bash
mltp run . --local     # the whole pipeline on this machine, no AWS account
```

The scripts generate their own data, so this passes as it is. It needs
Python 3.9+ and a package index: the first local run builds a virtualenv that
mirrors the SageMaker container, with `requirements.txt` (`--python PATH` runs
the scripts with another interpreter's packages instead). Reports land in `.mltp/runs/<run>/`
(`report.html`, `report.md`); `.mltp/` is in `.gitignore`.

Then, one step at a time:

1. `preprocessing.py`: read your data (mount it as the `raw` input in config.yaml).
2. `train.py`: your model and its hyperparameters (`steps.training.hyperparameters`).
3. `evaluation.py`: the metrics your gate needs, in `evaluation.json`.
4. `config.yaml`: the bucket ({bucket}), region ({region}) and the two roles of your
   AWS account, and the gate's rules.

On Jenkins the `Jenkinsfile` is all it takes (`mlTrainingPipeline()`); every branch
trains and gates, the default branch also registers a version in model package
group `{name}`.
"""
