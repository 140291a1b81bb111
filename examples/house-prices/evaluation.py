"""Evaluation, written as for a SageMaker ScriptProcessor: fixed container paths,
and SageMaker's model-quality format for the report.

Reads  /opt/ml/processing/model/model.tar.gz
       /opt/ml/processing/test/test.csv
Writes /opt/ml/processing/evaluation/evaluation.json:
       {"regression_metrics": {"mse": {"value": ..., "standard_deviation": ...},
                               "rmse": {...}, "mae": {...}, "r2": {...}}}
"""
import json
import os
import pathlib
import tarfile
import tempfile

import joblib
import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from tabulate import tabulate

BASE = "/opt/ml/processing"


def main():
    unpacked = tempfile.mkdtemp()
    with tarfile.open(os.path.join(BASE, "model", "model.tar.gz")) as tar:
        tar.extractall(path=unpacked)
    model = joblib.load(os.path.join(unpacked, "model.joblib"))

    test = pd.read_csv(os.path.join(BASE, "test", "test.csv"), header=None)
    y_test = test.iloc[:, 0].to_numpy()
    predictions = model.predict(test.iloc[:, 1:].to_numpy())
    errors = predictions - y_test

    mse = mean_squared_error(y_test, predictions)
    report = {
        "regression_metrics": {
            "mse": {"value": float(mse), "standard_deviation": float(np.std(errors ** 2))},
            "rmse": {"value": float(np.sqrt(mse)), "standard_deviation": float(np.std(np.abs(errors)))},
            "mae": {"value": float(mean_absolute_error(y_test, predictions)),
                    "standard_deviation": float(np.std(np.abs(errors)))},
            "r2": {"value": float(r2_score(y_test, predictions))},
        },
    }
    rows = [(name, "%.4f" % values["value"]) for name, values in report["regression_metrics"].items()]
    print(tabulate(rows, headers=["metric", "value"]))

    out = pathlib.Path(BASE, "evaluation")
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
