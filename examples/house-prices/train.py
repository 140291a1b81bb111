"""Training, written for SageMaker's scikit-learn container (script mode).

Hyperparameters arrive as --name value arguments. The channels and the model
folder come from SageMaker's variables, as in any script-mode example:
SM_CHANNEL_TRAIN, SM_CHANNEL_VALIDATION and SM_MODEL_DIR.
"""
import argparse
import os

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.metrics import mean_squared_error


def load(folder):
    frame = pd.concat([pd.read_csv(os.path.join(folder, name), header=None)
                       for name in sorted(os.listdir(folder)) if name.endswith(".csv")])
    return frame.iloc[:, 1:].to_numpy(), frame.iloc[:, 0].to_numpy()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-estimators", type=int, default=300)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--subsample", type=float, default=0.8)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION"))
    args, _ = parser.parse_known_args()

    x_train, y_train = load(args.train)
    x_val, y_val = load(args.validation)
    model = GradientBoostingRegressor(n_estimators=args.n_estimators, learning_rate=args.learning_rate,
                                      max_depth=args.max_depth, subsample=args.subsample, random_state=7)
    model.fit(x_train, y_train)
    rmse = float(np.sqrt(mean_squared_error(y_val, model.predict(x_val))))
    print("validation:rmse=%.4f" % rmse)
    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))


def model_fn(model_dir):
    """Loads the model for SageMaker's scikit-learn serving container."""
    return joblib.load(os.path.join(model_dir, "model.joblib"))


if __name__ == "__main__":
    main()
