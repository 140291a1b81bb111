"""Preprocessing step: build the train / validation / test splits.

Reads  $MLTP_INPUT_DIR/raw/*.csv when present (default /opt/ml/processing/input);
       otherwise generates a synthetic, deterministic transaction data set.
Writes $MLTP_OUTPUT_DIR/{train,validation,test}/<split>.csv
       (default /opt/ml/processing/output): header row, columns
       label, amount, hour, merchant_risk, ... (see fraud/features.py).
"""
import os
import sys

# SageMaker runs this from /opt/ml/processing/input/code/: make the repo's own
# modules (fraud/) importable wherever the code was extracted.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import glob  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from fraud.features import COLUMNS, FEATURES, LABEL, SEED, SPLITS, split_file  # noqa: E402

N_ROWS = 20000
FRAUD_RATE = 0.04
TEST_SIZE = 0.15
VALIDATION_SIZE = 0.15


def fail(message):
    print("preprocessing: error: %s" % message, file=sys.stderr)
    sys.exit(2)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def generate(n_rows=N_ROWS, seed=SEED):
    """A synthetic card-transaction data set, ~4.2% fraud, identical on every run."""
    x, y = make_classification(
        n_samples=n_rows,
        n_features=len(FEATURES),
        n_informative=5,
        n_redundant=1,
        n_repeated=0,
        n_clusters_per_class=2,
        weights=[1.0 - FRAUD_RATE],
        flip_y=0.005,  # a little label noise, as real fraud labels have
        class_sep=1.0,
        shuffle=False,
        random_state=seed,
    )
    # Columns 0-4 are informative, 5 redundant, 6-7 noise. Give each a plausible
    # scale; the maps are monotone, so the signal is unchanged.
    df = pd.DataFrame({
        LABEL: y.astype(np.int64),
        "amount": np.round(np.exp(4.0 + 0.9 * x[:, 0]), 2),
        "hour": np.clip(np.floor(_sigmoid(1.6 * x[:, 6]) * 24), 0, 23).astype(np.int64),
        "merchant_risk": np.round(_sigmoid(x[:, 1]), 4),
        "distance_from_home": np.round(np.exp(2.0 + 0.8 * x[:, 2]), 3),
        "txn_count_24h": np.clip(np.round(3.0 + 1.5 * x[:, 3]), 0, None).astype(np.int64),
        "avg_amount_30d": np.round(np.exp(4.0 + 0.5 * x[:, 5]), 2),
        "card_age_days": np.round(np.exp(6.0 + 0.7 * x[:, 7])).astype(np.int64),
        "foreign_ratio": np.round(_sigmoid(x[:, 4]), 4),
    })
    return df[COLUMNS]


def load_raw(raw_dir):
    """Concatenate every CSV under raw_dir (sorted by name) and check its columns."""
    files = sorted(glob.glob(os.path.join(raw_dir, "**", "*.csv"), recursive=True))
    if not files:
        return None
    frames = [pd.read_csv(f) for f in files]
    df = pd.concat(frames, ignore_index=True)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        fail("%s: missing column(s) %s; expected %s" % (raw_dir, ", ".join(missing), ", ".join(COLUMNS)))
    df = df[COLUMNS].dropna()
    if df.empty:
        fail("%s: no usable rows" % raw_dir)
    print("preprocessing: read %d rows from %d file(s) in %s" % (len(df), len(files), raw_dir))
    return df


def main():
    input_dir = os.environ.get("MLTP_INPUT_DIR", "/opt/ml/processing/input")
    output_dir = os.environ.get("MLTP_OUTPUT_DIR", "/opt/ml/processing/output")

    df = load_raw(os.path.join(input_dir, "raw"))
    if df is None:
        df = generate()
        print("preprocessing: no CSV under %s; generated %d synthetic rows (seed %d)"
              % (os.path.join(input_dir, "raw"), len(df), SEED))

    holdout = TEST_SIZE + VALIDATION_SIZE
    train, rest = train_test_split(df, test_size=holdout, stratify=df[LABEL], random_state=SEED)
    validation, test = train_test_split(
        rest, test_size=TEST_SIZE / holdout, stratify=rest[LABEL], random_state=SEED)

    for name, part in zip(SPLITS, (train, validation, test)):
        folder = os.path.join(output_dir, name)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, split_file(name))
        part.to_csv(path, index=False)
        print("preprocessing: wrote %s: %d rows, %.2f%% fraud"
              % (path, len(part), 100.0 * part[LABEL].mean()))


if __name__ == "__main__":
    main()
