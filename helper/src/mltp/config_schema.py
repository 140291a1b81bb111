"""The one definition of config.yaml version 1 (docs/contract.md, section 2).

Everything else derives from this dict: validation (jsonschema), the defaults
of the typed config objects, and `resources/mltp/config.schema.json`, which
editors use for completion (`mltp schema` prints it; a test keeps the shipped
copy equal to this). Keywords starting with ``x-`` are ours: ``x-error`` is the
plain-language reason shown when a ``pattern`` does not match.

Patterns must match the whole value: `config.py` checks them with that rule
(a trailing newline does not slip past a final ``$``), and they avoid ``\\s``,
which would let newlines and tabs into names AWS later refuses.
"""

import copy
from typing import Any, Dict

from .algorithms import ALGORITHMS

# SageMaker framework containers mltp knows how to pick an image for.
FRAMEWORKS = ["sklearn", "xgboost", "pytorch", "image"]

# Default framework_version per framework when config.yaml gives none.
DEFAULT_FRAMEWORK_VERSIONS = {"sklearn": "1.2-1", "xgboost": "1.7-1", "pytorch": "2.1"}

# AWS's tag rule ([\p{L}\p{Z}\p{N}_.:/=+\-@], SageMaker and Step Functions alike)
# in Python's re: \w is letters, digits and '_'; the space separators are listed.
TAG_CHARACTERS = "[\\w .:/=+@\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000-]"

# Longest model name: leaves room for "--<branch slug>" in a state machine
# name (80), "-<step>-<run id>" in job names (63) and the run layout in S3.
NAME_MAX = 40

_NAME = {
    "type": "string",
    "minLength": 3,
    "maxLength": NAME_MAX,
    # Lower-case words separated by single hyphens: "--" is reserved as the
    # separator before the branch slug in state machine names.
    "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$",
    "x-error": "must be 3 to 40 characters of a-z, 0-9 and single hyphens, starting and ending with a letter or digit",
}

_INSTANCE_TYPE = {
    "type": "string",
    "pattern": r"^ml\.[a-z0-9]+\.[a-z0-9]+$",
    "x-error": "must be a SageMaker instance type such as ml.m5.xlarge",
}

_STRING_MAP = {
    "type": "object",
    "propertyNames": {
        "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,255}$",
        "x-error": "must be an environment variable name (letters, digits, underscore; not starting with a digit)",
    },
    "additionalProperties": {"type": ["string", "number", "boolean"]},
    "maxProperties": 50,
}


def _step(defaults: Dict[str, Any], extra: Dict[str, Any]) -> Dict[str, Any]:
    """Schema of one step; the three steps share their job settings."""
    props: Dict[str, Any] = {
        "script": {
            "type": "string",
            "minLength": 1,
            "pattern": r"^[^/\\].*\.py$",
            "x-error": "must be a .py file given relative to the model repo",
            "default": defaults["script"],
        },
        "framework": {"enum": FRAMEWORKS, "default": "sklearn"},
        "framework_version": {
            "type": "string",
            "minLength": 1,
            "description": "Default: 1.2-1 for sklearn, 1.7-1 for xgboost, 2.1 for pytorch.",
        },
        "image_uri": {
            "type": ["string", "null"],
            "pattern": r"^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})?$",
            "x-error": "must be an ECR image URI such as 123456789012.dkr.ecr.eu-west-1.amazonaws.com/repo:tag",
            "default": None,
        },
        "instance_type": dict(_INSTANCE_TYPE, default=defaults["instance_type"]),
        "instance_count": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1},
        "volume_size_gb": {"type": "integer", "minimum": 1, "maximum": 16384, "default": 30},
        "max_runtime_minutes": {
            "type": "integer",
            "minimum": 1,
            "maximum": defaults["max_runtime_limit"],
            "default": defaults["max_runtime_minutes"],
        },
        "environment": dict(_STRING_MAP, default={}),
        # The step cache (docs/contract.md, 2.3 and 8.4): opt-in per step, as SageMaker's.
        "cache": {"type": "boolean", "default": False,
                  "description": "Reuse the outputs of the newest successful run whose step had the same key."},
        "cache_expire_days": {"type": "integer", "minimum": 1, "maximum": 3650, "default": 30,
                              "description": "How many days a cached step's outputs may be reused."},
    }
    props.update(extra)
    return {"type": "object", "additionalProperties": False, "properties": props, "default": {}}


# A path inside a processing container: SageMaker takes absolute paths under
# /opt/ml/processing/ of at most 256 characters (ProcessingS3Input.LocalPath,
# ProcessingS3Output.LocalPath). Normalisation and overlaps are checked in
# config.py (`_container_path_problems`): a pattern cannot compare paths.
PROCESSING_ROOT = "/opt/ml/processing"


def _container_path(default: Any = None) -> Dict[str, Any]:
    node: Dict[str, Any] = {
        "type": "string",
        "maxLength": 256,
        "pattern": "^/opt/ml/processing/[^\\x00-\\x1f\\x7f]+$",
        "x-error": "must be an absolute path under /opt/ml/processing/ such as /opt/ml/processing/train",
    }
    if default is not None:
        node["default"] = default
    return node


_INPUTS = {
    "type": "array",
    "default": [],
    "maxItems": 9,  # SageMaker takes 10 processing inputs; the code bundle uses one
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "source"],
        "properties": {
            "name": {
                "type": "string",
                "pattern": "^[a-zA-Z0-9_-]{1,64}$",
                "x-error": "must be 1 to 64 letters, digits, '_' or '-' (it names a folder)",
            },
            "source": {
                "type": "string",
                # No IAM/S3 wildcard or policy variable (*, ? or ${...}): the key is a
                # Resource of the generated policies, where those would widen access.
                "pattern": r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^*?${}\x00-\x1f\x7f]*)?$",
                "x-error": "must be an S3 URI such as s3://bucket/prefix/, without *, ?, $, { or } "
                           "(IAM wildcards and policy variables)",
            },
            "destination": dict(_container_path(), description="Where the job finds the input. Default: "
                                "/opt/ml/processing/input/<name>."),
            "local": {
                "type": "string",
                "minLength": 1,
                "maxLength": 1024,
                "pattern": "^[^\\x00-\\x1f\\x7f]+$",
                "x-error": "must be a file or folder path, relative to the model repo or absolute",
                "description": "What a local run (mltp run --local) serves at `source` instead of the real data.",
            },
        },
    },
}

# Preprocessing's outputs, as SageMaker's ProcessingOutput list: a name (which the
# training channels and the evaluation's test data refer to, and the run's S3
# folder preprocessing/<name>/) and the container folder uploaded when the job
# ends. A mapping name -> path (null: the default path), or a list of names with
# the default paths. Either form names the whole set (docs/contract.md, 3.2).
OUTPUT_NAME_PATTERN = "^[a-z][a-z0-9_-]{0,63}$"
_OUTPUT_NAME_ERROR = "must be 1 to 64 of a-z, 0-9, '_' and '-', starting with a letter (it names a folder and a channel)"
DEFAULT_OUTPUTS = ("train", "validation", "test")
MAX_OUTPUTS = 10  # SageMaker takes 10 processing outputs
MAX_CHANNELS = 20  # SageMaker's InputDataConfig takes 20 channels
_OUTPUT_NAME = {"type": "string", "pattern": OUTPUT_NAME_PATTERN, "x-error": _OUTPUT_NAME_ERROR}

_SPLIT_OUTPUTS = {
    "type": ["object", "array"],
    "default": {name: f"{PROCESSING_ROOT}/output/{name}" for name in DEFAULT_OUTPUTS},
    "description": "The folders preprocessing writes, each uploaded when the job ends: a mapping of output name to "
                   "container path (null: /opt/ml/processing/output/<name>), or a list of output names with those "
                   "default paths. Names the whole set; default train, validation and test.",
    "propertyNames": {"pattern": OUTPUT_NAME_PATTERN, "x-error": _OUTPUT_NAME_ERROR},
    "additionalProperties": dict(_container_path(), type=["string", "null"]),
    "minProperties": 1,
    "maxProperties": MAX_OUTPUTS,
    "items": _OUTPUT_NAME,
    "minItems": 1,
    "maxItems": MAX_OUTPUTS,
    "uniqueItems": True,
}

# Training's channels: which preprocessing outputs (or which S3 data preprocessing
# does not produce) arrive as /opt/ml/input/data/<channel>, as SageMaker's
# estimator.fit({...}) takes them (docs/contract.md, 3.3).
_CHANNEL_SOURCE = {
    "type": "string",
    "minLength": 1,
    "maxLength": 1024,
    "pattern": r"^([a-z][a-z0-9_-]{0,63}|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^*?${}\x00-\x1f\x7f]*)?)$",
    "x-error": "must be the name of a preprocessing output, or an S3 URI such as s3://bucket/prefix/ "
               "without *, ?, $, { or } (IAM wildcards and policy variables)",
}
_CHANNELS = {
    "type": ["object", "array"],
    "description": "The training job's input channels: a list of preprocessing output names, or a mapping of "
                   "channel name to an output name, an s3:// URI, or {source, content_type}. "
                   "Default: every preprocessing output except test.",
    "propertyNames": {"pattern": OUTPUT_NAME_PATTERN, "x-error": _OUTPUT_NAME_ERROR},
    # A source (string) or {source, content_type}: one schema, as each keyword
    # applies to its own type, so an error names the key instead of "anyOf".
    "additionalProperties": dict(
        _CHANNEL_SOURCE,
        type=["string", "object"],
        additionalProperties=False,
        required=["source"],
        properties={
            "source": _CHANNEL_SOURCE,
            "content_type": {
                "type": "string",
                "maxLength": 256,
                "pattern": r"^[\w.+-]+/[\w.+-]+( *; *[\w.+-]+=[\w.+-]+)*$",
                "x-error": "must be a MIME type such as text/csv or application/x-parquet",
            },
            "local": {
                "type": "string",
                "minLength": 1,
                "maxLength": 1024,
                "pattern": "^[^\\x00-\\x1f\\x7f]+$",
                "x-error": "must be a file or folder path, relative to the model repo or absolute",
                "description": "What a local run serves at an s3:// source instead of the real data.",
            },
        },
    ),
    "minProperties": 1,
    "maxProperties": MAX_CHANNELS,
    "items": _OUTPUT_NAME,
    "minItems": 1,
    "maxItems": MAX_CHANNELS,
    "uniqueItems": True,
}

_ARGUMENTS = {"type": "array", "items": {"type": ["string", "number"]}, "maxItems": 100, "default": []}

# SageMaker's MetricDefinition (AlgorithmSpecification.MetricDefinitions): a name of
# 1 to 255 characters and a regex of 1 to 500, each one line (the API's `.+`), at
# most 40 of them. Whether a regex compiles and has a group is checked in
# config/checks.py (`_metric_definition_problems`): a pattern cannot say it.
METRIC_DEFINITIONS_MAX = 40
_ONE_LINE = "^[^\r\n\u0085\u2028\u2029]+$"
_METRIC_DEFINITIONS = {
    "type": "array",
    "default": [],
    "maxItems": METRIC_DEFINITIONS_MAX,
    "description": "Metrics read from the training job's log, as SageMaker's metric_definitions: each regex's "
                   "first group is the value; the last value of each is kept (the report, gate rules with "
                   "source: training).",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "regex"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": _ONE_LINE,
                     "x-error": "must be one line of text (SageMaker's metric name rule)"},
            "regex": {"type": "string", "minLength": 1, "maxLength": 500, "pattern": _ONE_LINE,
                      "x-error": "must be a one-line regular expression (SageMaker's metric regex rule)"},
        },
    },
}

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                  3288, 3653]

# Retraining when new data lands (the trigger `mltp trigger install` sets up).
# Either a quiet period (a run starts once no new object has arrived for that
# long) or a marker object (a run starts when an object of that name lands).
_RETRAIN = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "default": None,
    "description": "Start a default-branch run when new data lands in these preprocessing inputs (`mltp trigger install`).",
    "required": ["on_inputs"],
    "properties": {
        "on_inputs": {
            "type": "array",
            "minItems": 1,
            "maxItems": 9,
            "uniqueItems": True,
            "items": {
                "type": "string",
                "pattern": "^[a-zA-Z0-9_-]{1,64}$",
                "x-error": "must name an input of steps.preprocessing.inputs",
            },
        },
        "quiet_minutes": {"type": "integer", "minimum": 1, "maximum": 1440},
        "marker": {
            "type": "string",
            "pattern": r"^[A-Za-z0-9!_.*'()-]{1,255}$",
            "x-error": "must be an object name without '/' such as _SUCCESS",
        },
    },
}

_LOGS = {
    "type": "object",
    "additionalProperties": False,
    "default": {},
    "properties": {
        "retention_days": {"enum": RETENTION_DAYS, "default": 30},
    },
}

# Notifications of runs nobody watches (notifications.py): an SNS topic of the
# config's region, and which events reach it.
NOTIFY_EVENTS = ["failed", "registered", "approved", "rejected"]
_NOTIFY = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "default": None,
    "description": "Send failed runs, newly registered versions and approval decisions to an SNS topic.",
    "required": ["topic_arn"],
    "properties": {
        "topic_arn": {
            "type": "string",
            "pattern": r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$",
            "x-error": "must be the ARN of an SNS topic, arn:aws:sns:REGION:ACCOUNT:NAME (a standard topic, not .fifo)",
        },
        "events": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "default": NOTIFY_EVENTS,
            "items": {"enum": NOTIFY_EVENTS},
        },
    },
}

# SageMaker limits: processing jobs run at most 777600 s (9 days), training 28 days.
_PROCESSING_LIMIT = 777600 // 60
_TRAINING_LIMIT = 28 * 24 * 60

# Managed spot training (spot.py): how long the job may take, waiting for spot
# capacity included; at least max_runtime_minutes (a check, not a pattern).
_SPOT = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "required": ["max_wait_minutes"],
    "properties": {
        "max_wait_minutes": {
            "type": "integer",
            "minimum": 1,
            "maximum": _TRAINING_LIMIT,
            "description": "Minutes the training job may take in all, waiting for spot capacity included "
                           "(StoppingCondition.MaxWaitTimeInSeconds); at least max_runtime_minutes.",
        },
    },
    "default": None,
    "description": "Train on managed spot capacity, with checkpoints kept in S3 under the run.",
}

SCHEMA: Dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://mltp.dev/config.schema.json",
    "title": "mltp config.yaml, version 1",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "name", "aws", "gate"],
    "properties": {
        "version": {"const": 1},
        "name": _NAME,
        "description": {
            "type": "string",
            "maxLength": 1000,
            # SageMaker's descriptions take letters, marks, spaces and visible characters
            # only. Line breaks and tabs are folded into spaces where a description is
            # used; any other control character would fail registration after the run.
            "pattern": "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$",
            "x-error": "must be text without control characters (line breaks and tabs are fine)",
        },
        "aws": {
            "type": "object",
            "additionalProperties": False,
            "required": ["region", "bucket", "sagemaker_role_arn", "states_role_arn"],
            "properties": {
                "region": {
                    "type": "string",
                    "pattern": r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$",
                    "x-error": "must be an AWS region name such as eu-west-1",
                },
                "bucket": {
                    "type": "string",
                    "minLength": 3,
                    "maxLength": 63,
                    "pattern": r"^(?!xn--)(?!sthree-)(?!\d+\.\d+\.\d+\.\d+$)(?!.*\.\.)(?!.*\.-)(?!.*-\.)(?!.*-s3alias$)(?!.*--ol-s3$)[a-z0-9][a-z0-9.-]*[a-z0-9]$",
                    "x-error": "must be an S3 bucket name: 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit",
                },
                "prefix": {
                    "type": "string",
                    "maxLength": 200,
                    # No '*': the prefix is part of every generated policy's resources,
                    # where it would be an IAM wildcard (another model's or team's objects).
                    "pattern": r"^[A-Za-z0-9!_.'()-]+(/[A-Za-z0-9!_.'()-]+)*$",
                    "x-error": "must be an S3 key prefix without leading or trailing '/' (letters, digits and !_.'()-; "
                               "no '*', which IAM policies read as a wildcard)",
                    "default": "mltp",
                },
                "sagemaker_role_arn": {
                    "type": "string",
                    "pattern": r"^arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::[0-9]{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$",
                    "x-error": "must be an IAM role ARN such as arn:aws:iam::123456789012:role/SageMakerExecution",
                },
                "states_role_arn": {
                    "type": "string",
                    "pattern": r"^arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::[0-9]{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$",
                    "x-error": "must be an IAM role ARN such as arn:aws:iam::123456789012:role/StepFunctionsExecution",
                },
                "branch_sagemaker_role_arn": {
                    "type": ["string", "null"],
                    "pattern": r"^arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::[0-9]{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$",
                    "x-error": "must be an IAM role ARN such as arn:aws:iam::123456789012:role/SageMakerBranches",
                    "default": None,
                },
                "kms_key_id": {
                    "type": ["string", "null"],
                    "pattern": r"^(alias/[a-zA-Z0-9/_-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}|arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[a-zA-Z0-9/_-]+)$",
                    "x-error": "must be a KMS key id, key ARN, alias name (alias/...) or alias ARN",
                    "default": None,
                },
                "tags": {
                    "type": "object",
                    "maxProperties": 40,
                    "propertyNames": {
                        "minLength": 1,
                        "maxLength": 128,
                        "pattern": r"^(?!aws:)" + TAG_CHARACTERS + "+$",
                        "x-error": "must be 1 to 128 letters, digits, spaces and _.:/=+-@, not starting with 'aws:'",
                    },
                    "additionalProperties": {
                        "type": ["string", "number", "boolean"],
                        "maxLength": 256,
                        "pattern": "^" + TAG_CHARACTERS + "*$",
                        "x-error": "must be at most 256 letters, digits, spaces and _.:/=+-@ (AWS's tag value rule)",
                    },
                    "default": {},
                },
            },
        },
        "steps": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "preprocessing": _step(
                    {"script": "preprocessing.py", "instance_type": "ml.m5.xlarge", "max_runtime_minutes": 60, "max_runtime_limit": _PROCESSING_LIMIT},
                    {"inputs": _INPUTS, "arguments": _ARGUMENTS, "outputs": _SPLIT_OUTPUTS},
                ),
                "training": _step(
                    {"script": "train.py", "instance_type": "ml.m5.xlarge", "max_runtime_minutes": 120, "max_runtime_limit": _TRAINING_LIMIT},
                    {
                        "algorithm": {
                            "enum": sorted(ALGORITHMS),
                            "description": "A SageMaker built-in algorithm trained from data and hyperparameters "
                                           "alone, instead of `script` (framework_version picks its image).",
                        },
                        "hyperparameters": {
                            "type": "object",
                            "propertyNames": {
                                "pattern": "^[A-Za-z_][A-Za-z0-9_.-]{0,255}$",
                                "x-error": "must be a hyperparameter name (letters, digits, _ . -)",
                            },
                            "additionalProperties": {"type": ["string", "number", "boolean"]},
                            "maxProperties": 95,  # SageMaker takes 100; script mode adds 5 of its own
                            "default": {},
                        },
                        "channels": _CHANNELS,
                        "metric_definitions": _METRIC_DEFINITIONS,
                        "spot": _SPOT,
                    },
                ),
                "evaluation": _step(
                    {"script": "evaluation.py", "instance_type": "ml.m5.large", "max_runtime_minutes": 30, "max_runtime_limit": _PROCESSING_LIMIT},
                    {
                        "arguments": _ARGUMENTS,
                        "model_destination": dict(_container_path(f"{PROCESSING_ROOT}/model"),
                                                  description="Where model.tar.gz (still packed) is put."),
                        "test_destination": dict(_container_path(f"{PROCESSING_ROOT}/input/test"),
                                                 description="Where the preprocessing test split is put."),
                        "output": dict(_container_path(f"{PROCESSING_ROOT}/output"),
                                       description="The folder evaluation.json is written to; all of it is uploaded."),
                        "test_from": dict(_OUTPUT_NAME, description="The preprocessing output put at "
                                          "test_destination. Default: test."),
                    },
                ),
            },
        },
        "gate": {
            "type": "array",
            "minItems": 1,
            "maxItems": 20,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["metric"],
                "properties": {
                    "metric": {
                        "type": "string",
                        "pattern": "^[A-Za-z_][A-Za-z0-9_-]{0,63}$",
                        "x-error": "must be a metric name from evaluation.json (letters, digits, '_' or '-')",
                    },
                    "path": {
                        "type": "string",
                        "maxLength": 256,
                        "pattern": "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$",
                        "x-error": "must be a dotted path into evaluation.json such as regression_metrics.mse.value "
                                   "(names of letters, digits, '_' or '-', joined by '.')",
                        "description": "Where the metric's value is in evaluation.json, dotted like SageMaker "
                                       "Pipelines' JsonGet. Default: metrics.<metric>.value, else the metric in "
                                       "SageMaker's model-quality sections (docs/contract.md#35-evaluationjson-and-the-gate).",
                    },
                    "source": {
                        "enum": ["evaluation", "training"],
                        "description": "Where the metric's value comes from: evaluation.json (default) or "
                                       "the training job's metrics (steps.training.metric_definitions).",
                    },
                    "min": {"type": "number"},
                    "max": {"type": "number"},
                    "beat_champion": {
                        "type": "boolean",
                        "description": "The metric must be at least `by` better than the champion's "
                                       "(the newest Approved version of the model package group); "
                                       "passes when there is no champion.",
                    },
                    "by": {"type": "number", "minimum": 0, "description": "Margin over the champion (champion rules)."},
                    "better": {
                        "enum": ["higher", "lower"],
                        "description": "Which direction is better (champion rules). Default: lower when the "
                                       "metric's threshold rule has only max, else higher.",
                    },
                },
            },
        },
        "registry": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "model_package_group": {
                    "type": "string",
                    "maxLength": 63,
                    "pattern": "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$",
                    "x-error": "must be 1 to 63 letters, digits and hyphens, starting and ending with a letter or digit",
                },
                "approval_status": {"enum": ["PendingManualApproval", "Approved"], "default": "PendingManualApproval"},
                "inference": {
                    "type": "object",
                    "additionalProperties": False,
                    "default": {},
                    "properties": {
                        "instance_types": {"type": "array", "minItems": 1, "items": _INSTANCE_TYPE, "default": ["ml.m5.large"]},
                        "content_types": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": r"^[\w.+-]+/[\w.+-]+$", "x-error": "must be a MIME type such as text/csv"}, "default": ["text/csv"]},
                        "response_types": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": r"^[\w.+-]+/[\w.+-]+$", "x-error": "must be a MIME type such as text/csv"}, "default": ["text/csv"]},
                    },
                },
            },
        },
        "schedule": {
            "type": ["string", "null"],
            "maxLength": 200,
            "description": "Jenkins cron spec for periodic retraining on the default branch, e.g. 'H 3 * * 1'.",
            "default": None,
        },
        "retrain": _RETRAIN,
        "logs": _LOGS,
        "notify": _NOTIFY,
    },
}


# Where each part of the file is documented: editors show these descriptions on
# hover, so every one points into the contract that ships with the library.
CONTRACT = "docs/contract.md"
_DOCUMENTED_AT = {
    (): "#2-configyaml",
    ("version",): "#21-top-level",
    ("name",): "#21-top-level",
    ("description",): "#21-top-level",
    ("aws",): "#22-aws",
    ("steps",): "#23-steps",
    ("steps", "preprocessing"): "#32-preprocessing",
    ("steps", "training"): "#33-training",
    ("steps", "evaluation"): "#34-evaluation",
    ("gate",): "#24-gate",
    ("registry",): "#25-registry",
    ("schedule",): "#26-schedule",
    ("retrain",): "#210-retrain",
    ("logs",): "#211-logs",
    ("notify",): "#212-notify",
}


def _documented(schema: Dict[str, Any]) -> Dict[str, Any]:
    for path, anchor in _DOCUMENTED_AT.items():
        node = schema
        for key in path:
            node = node["properties"][key]
        pointer = f"See {CONTRACT}{anchor}."
        node["description"] = f"{node['description']} {pointer}" if node.get("description") else pointer
    return schema


def json_schema() -> Dict[str, Any]:
    """The schema as shipped for editors: ours, with our private keywords kept
    (editors ignore unknown keywords) so the shipped file equals this one, and
    each part's description pointing to its section of the contract."""
    return _documented(copy.deepcopy(SCHEMA))
