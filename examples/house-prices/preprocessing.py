"""Preprocessing, written as for a SageMaker SKLearnProcessor: fixed container paths.

Reads  /opt/ml/processing/input/houses/*.csv   (the `raw` input)
Writes /opt/ml/processing/train/train.csv
       /opt/ml/processing/validation/validation.csv
       /opt/ml/processing/test/test.csv
The first column of every output is the target (price, in thousands); the
others are the features, already encoded and scaled, with no header: the
layout SageMaker's built-in algorithms expect too.
"""
import glob
import json
import os
import sys

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

BASE = "/opt/ml/processing"
NUMERIC = ["area_m2", "rooms", "age_years", "distance_km", "garage"]
CATEGORICAL = ["neighbourhood"]
TARGET = "price"


def main():
    files = sorted(glob.glob(os.path.join(BASE, "input", "houses", "*.csv")))
    if not files:
        print("preprocessing: no CSV file in %s/input/houses/" % BASE, file=sys.stderr)
        sys.exit(1)
    frame = pd.concat([pd.read_csv(path) for path in files], ignore_index=True)
    missing = [c for c in NUMERIC + CATEGORICAL + [TARGET] if c not in frame.columns]
    if missing:
        print("preprocessing: %s lacks the columns %s" % (files[0], ", ".join(missing)), file=sys.stderr)
        sys.exit(1)
    frame = frame.dropna(subset=[TARGET])
    print("preprocessing: %d rows from %d file(s)" % (len(frame), len(files)))

    y = (frame.pop(TARGET) / 1000.0).to_numpy()
    transform = ColumnTransformer([
        ("numeric", StandardScaler(), NUMERIC),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
    ], sparse_threshold=0.0)
    x = transform.fit_transform(frame)
    table = np.concatenate([y.reshape(-1, 1), x], axis=1)

    rng = np.random.default_rng(7)
    rng.shuffle(table)
    n = len(table)
    splits = {"train": table[: int(0.7 * n)], "validation": table[int(0.7 * n): int(0.85 * n)],
              "test": table[int(0.85 * n):]}
    for name, part in splits.items():
        folder = os.path.join(BASE, name)
        os.makedirs(folder, exist_ok=True)
        pd.DataFrame(part).to_csv(os.path.join(folder, name + ".csv"), header=False, index=False)
        print("preprocessing: %s %d rows" % (name, len(part)))
    print("preprocessing: features %s" % json.dumps(list(transform.get_feature_names_out())))


if __name__ == "__main__":
    main()
