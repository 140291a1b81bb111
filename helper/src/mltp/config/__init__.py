"""config.yaml version 1: the typed config objects (model.py), loading and
building them (loading.py), the schema's checks (schema.py) and the ones a schema
cannot express (checks.py), and how paths and values appear in messages
(display.py). `from mltp.config import X` keeps working for all of them.

Validation is jsonschema over `config_schema.SCHEMA` (the single definition)
plus the checks a schema cannot express (cross-field rules, AWS's own lists of
instance types, framework versions). Every problem is collected, then raised
together as one InvalidInput whose lines name file, line and key. The checks
module is imported on first use of one of its names: a text found valid before
(schema_cache.py) is not checked again, and needs none of it.
"""

from .display import HIDDEN, display, repr_q, shown, utf8_error_line
from .loading import load, parse, resolve_config_path
from .model import (CODE_DIR, DEFAULT_QUIET_MINUTES, INPUT_DIR, OUTPUT_DIR, SPLITS, STEP_ROLES, AwsConfig, Config,
                    GateRule, InferenceConfig, InputConfig, LogsConfig, MetricDefinition, NotifyConfig, RegistryConfig, RetrainConfig, Scalar,
                    StepConfig, Steps)

__all__ = ["CODE_DIR", "DEFAULT_QUIET_MINUTES", "HIDDEN", "INPUT_DIR", "OUTPUT_DIR", "SPLITS", "STEP_ROLES",
           "AwsConfig", "Config", "GateRule", "InferenceConfig", "InputConfig", "LogsConfig", "MetricDefinition", "NotifyConfig", "RegistryConfig",
           "RetrainConfig", "Scalar", "StepConfig", "Steps", "cron_problem", "display", "framework_versions", "load",
           "parse", "repr_q", "resolve_config_path", "shown", "utf8_error_line",
           "_INSTANCE_SHAPES", "_instance_type_lists", "_instance_types"]

_FROM_CHECKS = ("_INSTANCE_SHAPES", "_instance_type_lists", "_instance_types", "cron_problem", "framework_versions")


def __getattr__(name: str):
    if name in _FROM_CHECKS:
        from . import checks

        return getattr(checks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
