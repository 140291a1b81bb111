"""SageMaker's built-in XGBoost algorithm, reproduced for local runs.

On AWS a training step with `algorithm: xgboost` runs the `sagemaker-xgboost`
image in algorithm mode: no script; the container reads the job's files under
/opt/ml and trains. This file does the same thing locally, for the contract
SageMaker documents for that algorithm, and is run as a stand-alone program
(`python xgboost_algorithm.py /opt/ml`) with the interpreter of the xgboost
framework environment of the step's `framework_version` (local/envs.py), so it
imports only the standard library until it trains:

- input/config/hyperparameters.json: the hyperparameters, strings as SageMaker
  hands them; checked as the container checks them (`check`): `num_round` is
  required, each known name has a type and a range, an unknown name fails;
- input/config/inputdataconfig.json: the channels and the `train` channel's
  ContentType: `text/csv` (label in the first column, no header; the delimiter
  sniffed from the first line) or `text/libsvm`, the default when none is
  given; `csv_weights: 1` reads instance weights from the second CSV column;
- input/data/train (required) and input/data/validation (optional): every file
  below the folder is read; a hidden file fails the job, as in the container;
- each round prints the evaluation metrics of train and validation in the
  container's format, as they appear in the job's CloudWatch log
  (`[0]#011train-rmse:0.41234#011validation-rmse:0.43001`), and
  `early_stopping_rounds` stops on the last `eval_metric` of validation;
- model/xgboost-model: the Booster as that version of the container saves it
  (a pickle up to 1.2-x, `save_model` from 1.3-1 on);
- output/failure: on an error, the one line SageMaker's FailureReason shows
  (`ClientError: ...` for a problem of the input, `AlgorithmError: ...` else).

`hyperparameter_problems` is also what `mltp validate` runs on
`steps.training.hyperparameters`, so a bad value fails before anything reaches
AWS. What a local run does not reproduce is listed in docs/contract.md (3.3.1).
"""

import csv
import json
import os
import sys
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

MODEL_NAME = "xgboost-model"
# Versions whose container pickles the Booster instead of calling save_model.
PICKLED = ("0.90-1", "0.90-2", "1.0-1", "1.2-1", "1.2-2")

MAXIMIZE = ("accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map", "ndcg",
            "precision", "r2", "recall", "precision_macro", "precision_micro", "recall_macro", "recall_micro")
MINIMIZE = ("aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik", "interval-regression-accuracy",
            "logloss", "mae", "mape", "merror", "mlogloss", "mphe", "mse", "poisson-nloglik", "rmse", "rmsle",
            "tweedie-nloglik")
# Metrics the container computes itself (scikit-learn) rather than XGBoost.
CONTAINER_METRICS = ("accuracy", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "mse", "precision",
                     "precision_macro", "precision_micro", "r2", "recall", "recall_macro", "recall_micro")
OBJECTIVES = ("aft_loss_distribution", "binary:logistic", "binary:logitraw", "binary:hinge", "count:poisson",
              "multi:softmax", "multi:softprob", "rank:pairwise", "rank:ndcg", "rank:map", "reg:linear",
              "reg:squarederror", "reg:logistic", "reg:gamma", "reg:pseudohubererror", "reg:squaredlogerror",
              "reg:absoluteerror", "reg:tweedie", "survival:aft", "survival:cox")
ALIASES = {"learning_rate": "eta", "min_split_loss": "gamma", "reg_lambda": "lambda", "reg_alpha": "alpha"}
# Consumed by the algorithm, never handed to XGBoost.
CONTROL = ("num_round", "csv_weights", "early_stopping_rounds", "save_model_on_termination", "_kfold",
           "_num_cv_round", "_tuning_objective_metric", "use_dask_gpu_training")

INF = float("inf")


def _interval(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Tuple:
    return ("interval", low, high, low_open, high_open)


# name -> (kind, range): kind int | float | choice | text; range an interval or a tuple of choices.
SPEC: Dict[str, Tuple[str, Any]] = {
    "num_round": ("int", _interval(1, INF)),
    "csv_weights": ("int", _interval(0, 1)),
    "early_stopping_rounds": ("int", _interval(1, INF)),
    "booster": ("choice", ("gbtree", "gblinear", "dart")),
    "verbosity": ("int", _interval(0, 3)),
    "nthread": ("int", _interval(1, INF)),
    "eta": ("float", _interval(0, 1)),
    "gamma": ("float", _interval(0, INF)),
    "max_depth": ("int", _interval(0, INF)),
    "min_child_weight": ("float", _interval(0, INF)),
    "max_delta_step": ("float", _interval(0, INF)),
    "subsample": ("float", _interval(0, 1, low_open=True)),
    "colsample_bytree": ("float", _interval(0, 1, low_open=True)),
    "colsample_bylevel": ("float", _interval(0, 1, low_open=True)),
    "colsample_bynode": ("float", _interval(0, 1, low_open=True)),
    "lambda": ("float", _interval(0, INF)),
    "alpha": ("float", _interval(0, INF)),
    "tree_method": ("choice", ("auto", "exact", "approx", "hist", "gpu_hist")),
    "sketch_eps": ("float", _interval(0, 1, True, True)),
    "scale_pos_weight": ("float", _interval(0, INF, low_open=True)),
    "updater": ("text", None),
    "dsplit": ("choice", ("row", "col")),
    "refresh_leaf": ("int", _interval(0, 1)),
    "process_type": ("choice", ("default", "update")),
    "grow_policy": ("choice", ("depthwise", "lossguide")),
    "max_leaves": ("int", _interval(0, INF)),
    "max_bin": ("int", _interval(0, INF)),
    "predictor": ("choice", ("auto", "cpu_predictor", "gpu_predictor")),
    "monotone_constraints": ("text", None),
    "interaction_constraints": ("text", None),
    "sample_type": ("choice", ("uniform", "weighted")),
    "normalize_type": ("choice", ("tree", "forest")),
    "rate_drop": ("float", _interval(0, 1)),
    "one_drop": ("int", _interval(0, 1)),
    "skip_drop": ("float", _interval(0, 1)),
    "lambda_bias": ("float", _interval(0, 1)),
    "tweedie_variance_power": ("float", _interval(1, 2, True, True)),
    "objective": ("choice", OBJECTIVES),
    "num_class": ("int", _interval(2, INF)),
    "base_score": ("float", _interval(0, INF)),
    "_kfold": ("int", _interval(2, INF)),
    "_num_cv_round": ("int", _interval(1, INF)),
    "_tuning_objective_metric": ("text", None),
    "eval_metric": ("text", None),
    "seed": ("int", _interval(-(2 ** 31), 2 ** 31 - 1, True, True)),
    "num_parallel_tree": ("int", _interval(1, INF)),
    "save_model_on_termination": ("choice", ("true", "false")),
    "aft_loss_distribution": ("choice", ("normal", "logistic", "extreme")),
    "aft_loss_distribution_scale": ("float", _interval(0, INF)),
    "deterministic_histogram": ("choice", ("true", "false")),
    "sampling_method": ("choice", ("uniform", "gradient_based")),
    "prob_buffer_row": ("int", _interval(1, INF, low_open=True)),
    "use_dask_gpu_training": ("choice", ("true", "false")),
}


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse(kind: str, text: str) -> Any:
    if kind == "int":
        number = float(text)
        if number != int(number):
            raise ValueError(text)
        return int(number)
    if kind == "float":
        return float(text)
    return text


def _in_interval(value: float, interval: Tuple) -> bool:
    _, low, high, low_open, high_open = interval
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    return above and below


def _describe(interval: Tuple) -> str:
    _, low, high, low_open, high_open = interval
    left = "(" if low_open else "["
    right = ")" if high_open or high == INF else "]"
    return f"{left}{low:g}, {'inf' if high == INF else format(high, 'g')}{right}"


def check(hyperparameters: Dict[str, Any]) -> Tuple[Dict[str, Any], List[Tuple[str, str]]]:
    """The typed hyperparameters (aliases resolved) and every problem with them,
    as (name, message): what the container refuses before it trains."""
    problems: List[Tuple[str, str]] = []
    typed: Dict[str, Any] = {}
    for given, raw in hyperparameters.items():
        name = ALIASES.get(given, given)
        if name in typed:
            problems.append((given, f"sets {name} a second time (it is an alias of {name})"))
            continue
        spec = SPEC.get(name)
        if spec is None:
            if given.startswith("sagemaker_"):
                continue  # SageMaker's own (never set by mltp for an algorithm)
            problems.append((given, "is not a hyperparameter of the built-in XGBoost algorithm"))
            continue
        kind, allowed = spec
        text = _as_text(raw).strip()
        try:
            value = _parse(kind, text)
        except (TypeError, ValueError):
            problems.append((given, f"must be {'a whole number' if kind == 'int' else 'a number'}, not {text!r}"))
            continue
        if kind in ("int", "float") and not _in_interval(value, allowed):
            problems.append((given, f"{text} is not in {_describe(allowed)}"))
            continue
        if kind == "choice" and value not in allowed:
            problems.append((given, f"{text!r} is not one of {', '.join(allowed)}"))
            continue
        typed[name] = value
    if "num_round" not in typed and not any(ALIASES.get(k, k) == "num_round" for k in hyperparameters):
        problems.append(("", "the built-in XGBoost algorithm needs the hyperparameter num_round"))
    objective = typed.get("objective")
    if objective in ("multi:softmax", "multi:softprob") and "num_class" not in typed:
        problems.append(("objective", f"{objective} needs the hyperparameter num_class"))
    if objective is None and "num_class" in typed:
        problems.append(("num_class", "is only used with a multi-class objective (multi:softmax, multi:softprob)"))
    metrics = typed.get("eval_metric")
    if isinstance(metrics, str):
        for metric in [m.strip() for m in metrics.split(",") if m.strip()]:
            reason = _metric_problem(metric, objective or "reg:squarederror")
            if reason:
                problems.append(("eval_metric", reason))
    for name in ("monotone_constraints",):
        if name in typed and typed.get("tree_method") not in ("exact", "hist"):
            problems.append((name, "needs tree_method exact or hist"))
    if "interaction_constraints" in typed and typed.get("tree_method") not in ("exact", "hist", "approx"):
        problems.append(("interaction_constraints", "needs tree_method exact, hist or approx"))
    return typed, problems


def _metric_problem(metric: str, objective: str) -> Optional[str]:
    if "@" in metric:
        name, _, threshold = metric.partition("@")
        if name.strip() not in ("error", "ndcg", "map"):
            return f"{metric!r}: only error, ndcg and map take a threshold '@t'"
        try:
            float(threshold)
        except ValueError:
            return f"{metric!r}: the threshold after '@' must be a number"
        return None
    if metric not in MAXIMIZE + MINIMIZE:
        return f"{metric!r} is not an evaluation metric of the algorithm"
    if metric == "auc" and not objective.startswith(("binary:", "rank:")):
        return "auc needs a binary: or rank: objective"
    if metric == "aft-nloglik" and objective != "survival:aft":
        return "aft-nloglik needs the objective survival:aft"
    return None


def hyperparameter_problems(hyperparameters: Dict[str, Any]) -> List[Tuple[str, str]]:
    """What `mltp validate` reports for steps.training.hyperparameters."""
    return check(hyperparameters)[1]


# --------------------------------------------------------------------------- the job


class ClientError(Exception):
    """A problem of the job's input: FailureReason 'ClientError: ...'."""


def _content_type(value: Optional[str]) -> str:
    if not value:
        return "libsvm"
    main, _, params = value.lower().partition(";")
    main = main.strip()
    if main in ("csv", "text/csv"):
        for param in params.split(";"):
            key, _, val = param.partition("=")
            if key.strip() == "label_size" and val.strip() != "1":
                raise ClientError(f"{value} is not an accepted csv ContentType: label_size must be 1")
        return "csv"
    if main in ("libsvm", "text/libsvm", "text/x-libsvm"):
        return "libsvm"
    if main in ("parquet", "application/x-parquet", "recordio-protobuf", "application/x-recordio-protobuf"):
        raise ClientError(f"ContentType {value} is accepted by the algorithm on SageMaker but not reproduced "
                          "by a local run (text/csv and text/libsvm are)")
    raise ClientError(f"{value} is not an accepted ContentType: text/csv, text/libsvm")


def _files(folder: str) -> List[str]:
    out = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            if name.startswith("."):
                raise ClientError("Hidden file found in the data path! Remove that before training.")
            out.append(os.path.join(root, name))
    return out


def _read_csv(files: List[str], weights: bool):
    rows: List[List[float]] = []
    delimiter = None
    for path in files:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                line = line.strip()
                if not line:
                    continue
                if delimiter is None:
                    try:
                        delimiter = csv.Sniffer().sniff(line).delimiter
                    except csv.Error as exc:
                        raise ClientError(f"Could not determine delimiter on line {line[:50]}: {exc}")
                try:
                    rows.append([float(x) if x.strip() != "" else float("nan") for x in line.split(delimiter)])
                except ValueError:
                    raise ClientError(f"Line {number} '{line[:50]}...' of file '{os.path.basename(path)}' is not "
                                      "'CSV' format (numbers only, label first, no header)")
    return rows, 2 if weights else 1


def _read_libsvm(files: List[str]):
    labels: List[float] = []
    weights: List[float] = []
    entries: List[Dict[int, float]] = []
    for path in files:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                parts = line.split("#", 1)[0].split()
                if not parts:
                    continue
                try:
                    label, _, weight = parts[0].partition(":")
                    labels.append(float(label))
                    weights.append(float(weight) if weight else 1.0)
                    row = {}
                    for item in parts[1:]:
                        key, _, value = item.partition(":")
                        if key == "qid":
                            continue
                        row[int(key)] = float(value)
                    entries.append(row)
                except ValueError:
                    raise ClientError(f"Line {number} '{line.strip()[:50]}...' of file '{os.path.basename(path)}' "
                                      "is not 'LIBSVM' format")
    return labels, weights, entries


def _matrices(xgb, np, folders: Dict[str, str], content_type: str, csv_weights: int):
    """name -> DMatrix for each channel folder with data; all of one width."""
    loaded = {}
    width = 0
    for name, folder in folders.items():
        files = _files(folder) if os.path.isdir(folder) else []
        if not files or sum(os.path.getsize(f) for f in files) == 0:
            continue
        if content_type == "csv":
            rows, first = _read_csv(files, csv_weights == 1)
            widths = {len(r) for r in rows}
            if len(widths) > 1:
                raise ClientError(f"the rows of channel {name} have different numbers of columns: {sorted(widths)}")
            loaded[name] = ("csv", rows, first)
            width = max(width, (widths.pop() - first) if widths else 0)
        else:
            labels, weights, entries = _read_libsvm(files)
            loaded[name] = ("libsvm", labels, weights, entries)
            width = max([width] + [max(r) + 1 for r in entries if r])
    out = {}
    for name, data in loaded.items():
        if data[0] == "csv":
            _, rows, first = data
            if not rows:
                raise ClientError("Got input data without labels. Please check the input data set.")
            array = np.array(rows, dtype=float)
            matrix = xgb.DMatrix(array[:, first:], label=array[:, 0], missing=float("nan"),
                                 weight=array[:, 1] if first == 2 else None)
        else:
            _, labels, weights, entries = data
            if not labels:
                raise ClientError("Got input data without labels. Please check the input data set.")
            dense = np.full((len(entries), width), np.nan)
            for i, row in enumerate(entries):
                for j, value in row.items():
                    dense[i, j] = value
            matrix = xgb.DMatrix(dense, label=np.array(labels), weight=np.array(weights), missing=float("nan"))
        out[name] = matrix
    return out


def _container_metric(np, name: str, objective: str, num_class: Optional[int]) -> Callable:
    """One of the metrics the container computes itself, on XGBoost's predictions."""
    from sklearn import metrics as m

    def classes(preds):
        preds = np.asarray(preds)
        if preds.ndim == 2:
            return np.argmax(preds, axis=1)
        if objective == "multi:softmax":
            return preds.astype(int)
        if objective == "binary:logitraw":
            return (preds > 0.0).astype(int)
        return (preds > 0.5).astype(int)

    scorers = {
        "accuracy": lambda y, p: m.accuracy_score(y, classes(p)),
        "balanced_accuracy": lambda y, p: m.balanced_accuracy_score(y, classes(p)),
        "f1": lambda y, p: m.f1_score(y, classes(p), average="macro"),
        "f1_binary": lambda y, p: m.f1_score(y, classes(p), average="binary"),
        "f1_macro": lambda y, p: m.f1_score(y, classes(p), average="macro"),
        "mse": lambda y, p: m.mean_squared_error(y, p),
        "precision": lambda y, p: m.precision_score(y, classes(p)),
        "precision_macro": lambda y, p: m.precision_score(y, classes(p), average="macro"),
        "precision_micro": lambda y, p: m.precision_score(y, classes(p), average="micro"),
        "recall": lambda y, p: m.recall_score(y, classes(p)),
        "recall_macro": lambda y, p: m.recall_score(y, classes(p), average="macro"),
        "recall_micro": lambda y, p: m.recall_score(y, classes(p), average="micro"),
        "r2": lambda y, p: m.r2_score(y, p),
    }
    scorer = scorers[name]

    def metric(preds, dmatrix):
        return name, float(scorer(dmatrix.get_label(), preds))

    return metric


def _log_line(epoch: int, results: List[Tuple[str, float]]) -> str:
    """A round's metrics as the container's log shows them in CloudWatch (tabs as #011)."""
    return f"[{epoch}]" + "".join(f"#011{name}:{value:.5f}" for name, value in results)


def train(base: str, version: str) -> None:
    config = os.path.join(base, "input", "config")
    with open(os.path.join(config, "hyperparameters.json"), encoding="utf-8") as handle:
        raw = json.load(handle)
    with open(os.path.join(config, "inputdataconfig.json"), encoding="utf-8") as handle:
        channels = json.load(handle)
    typed, problems = check(raw)
    if problems:
        name, message = problems[0]
        raise ClientError(f"Hyperparameter {name}: {message}" if name else message[0].upper() + message[1:])
    if "train" not in channels:
        raise ClientError("Missing required channel: train")
    for name in channels:
        if name not in ("train", "validation"):
            raise ClientError(f"Extraneous channel found: {name}")
    for name, channel in channels.items():
        if channel.get("TrainingInputMode", "File") != "File":
            raise ClientError(f"channel {name}: input mode {channel['TrainingInputMode']} is not reproduced "
                              "by a local run (File is)")
    content_type = _content_type(channels["train"].get("ContentType"))

    import numpy as np
    import xgboost as xgb

    data = os.path.join(base, "input", "data")
    folders = {"train": os.path.join(data, "train")}
    if "validation" in channels:
        folders["validation"] = os.path.join(data, "validation")
    matrices = _matrices(xgb, np, folders, content_type, typed.get("csv_weights", 0))
    if "train" not in matrices:
        raise ClientError(f"No data in training channel path {folders['train']}")
    if "validation" in channels and "validation" not in matrices:
        raise ClientError(f"No data in validation channel path {folders['validation']}")
    dtrain = matrices["train"]
    dvalidation = matrices.get("validation")
    print(f"Train matrix has {dtrain.num_row()} rows and {dtrain.num_col()} columns", flush=True)
    if dvalidation is not None:
        print(f"Validation matrix has {dvalidation.num_row()} rows", flush=True)

    params = {k: v for k, v in typed.items() if k not in CONTROL}
    num_round = typed["num_round"]
    metrics = [m.strip() for m in str(params.pop("eval_metric", "")).split(",") if m.strip()]
    container_metrics = [m for m in metrics if m in CONTAINER_METRICS]
    builtin = [m for m in metrics if m not in CONTAINER_METRICS]
    if builtin:
        params["eval_metric"] = builtin
    if "updater" in params:
        params["updater"] = ",".join(u.strip() for u in str(params["updater"]).split(","))
    objective = str(params.get("objective", "reg:squarederror"))
    custom = [_container_metric(np, m, objective, typed.get("num_class")) for m in container_metrics]

    def feval(preds, dmatrix):
        return [metric(preds, dmatrix) for metric in custom]

    evals = [(dtrain, "train")] + ([(dvalidation, "validation")] if dvalidation is not None else [])
    early = typed.get("early_stopping_rounds")
    stop_metric = metrics[-1] if metrics else None
    kwargs: Dict[str, Any] = {"evals": evals, "verbose_eval": False}
    if custom:
        import inspect

        takes = inspect.signature(xgb.train).parameters
        kwargs["custom_metric" if "custom_metric" in takes else "feval"] = feval
    if hasattr(xgb.callback, "TrainingCallback"):
        class Log(xgb.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log):
                results = [(f"{data}-{metric}", values[-1]) for data, by_metric in evals_log.items()
                           for metric, values in by_metric.items()]
                print(_log_line(epoch, results), flush=True)
                return False

        callbacks = [Log()]
        if early and dvalidation is not None and stop_metric:
            callbacks.append(xgb.callback.EarlyStopping(rounds=early, metric_name=stop_metric,
                                                        data_name="validation", maximize=stop_metric in MAXIMIZE,
                                                        save_best=True))
        kwargs["callbacks"] = callbacks
    else:  # XGBoost before 1.3: function callbacks
        def log(env):
            print(_log_line(env.iteration, [(n, float(v)) for n, v in env.evaluation_result_list]), flush=True)

        kwargs["callbacks"] = [log]
        if early and dvalidation is not None and stop_metric:
            kwargs["early_stopping_rounds"] = early
            kwargs["maximize"] = stop_metric in MAXIMIZE
    try:
        booster = xgb.train(params, dtrain, num_boost_round=num_round, **kwargs)
    except xgb.core.XGBoostError as exc:
        raise ClientError(f"XGB train call failed with exception: {' '.join(str(exc).split())[:800]}")

    model_dir = os.path.join(base, "model")
    os.makedirs(model_dir, exist_ok=True)
    location = os.path.join(model_dir, MODEL_NAME)
    if version in PICKLED:
        import pickle

        with open(location, "wb") as handle:
            pickle.dump(booster, handle, protocol=4)
    else:
        booster.save_model(location)
    print(f"Stored trained model at {location}", flush=True)


def main(argv: List[str]) -> int:
    base, version = argv[1], argv[2]
    try:
        train(base, version)
        return 0
    except ClientError as exc:
        reason = f"ClientError: {exc}"
    except Exception as exc:  # the algorithm's own failure: the whole story goes to the log
        traceback.print_exc()
        reason = f"AlgorithmError: {type(exc).__name__}: {exc}"
    print(reason, file=sys.stderr, flush=True)
    failure = os.path.join(base, "output", "failure")
    os.makedirs(os.path.dirname(failure), exist_ok=True)
    with open(failure, "w", encoding="utf-8") as handle:
        handle.write(reason)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
