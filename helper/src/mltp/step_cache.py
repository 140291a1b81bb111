"""The key of a step in the step cache (docs/contract.md, 8.4), the same for
local runs and runs on AWS.

A step's key is a SHA-256 over five parts, each a digest of its own, so that
`mltp plan` can say which part changed when a step cannot be reused:

- code: the shipped files the step's job can import, i.e. the code bundle
  without the other two steps' scripts, the config file, requirements.txt,
  the Jenkinsfile and Markdown files. Editing evaluation.py changes
  evaluation's key only; editing a shared module changes every step's.
- requirements: requirements.txt's bytes ("" when there is none).
- config: the step's resolved config section (every key of steps.<step> once
  defaults are filled in: framework, version, instance, arguments,
  hyperparameters, environment, inputs, container paths, ...) except `cache`
  and `cache_expire_days`, which say whether to use the cache, not what runs.
- image: the container the job runs in: the step's image_uri, or the
  framework image, named by framework, version and region (what selects it).
- inputs: what the step reads. Preprocessing: each input's objects (relative
  key and ETag, listed at start on AWS; relative path and SHA-256 of the local
  data in a local run). Training: preprocessing's key. Evaluation: training's
  and preprocessing's keys (it reads the model and the test split).

Neither the run name, the build, the branch nor the state machine's definition
is part of a key: a redeploy or a new run name never invalidates the cache.
How the parts combine into keys is cache_rules' (shipped to the retrain
trigger's function too). Only hashlib and json here: `mltp plan` stays fast.
"""

from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

from . import cache_rules
from .cache_rules import KEY_VERSION, PARTS, ROLES, STATES  # noqa: F401  (this module's names since the start)
from .config import Config, StepConfig

_NOT_CODE_SUFFIXES = (".md",)
_NOT_CODE_NAMES = ("Jenkinsfile", "requirements.txt")
_NOT_CONFIG = ("cache", "cache_expire_days")


@dataclass(frozen=True)
class StepKey:
    role: str
    key: str  # hex SHA-256 of the parts
    parts: Dict[str, str] = field(default_factory=dict)  # part -> its digest

    def changed(self, other_parts: Mapping[str, str]) -> Tuple[str, ...]:
        """The parts whose digest differs from `other_parts` (an earlier record's)."""
        return tuple(p for p in PARTS if self.parts.get(p) != other_parts.get(p))


_digest = cache_rules.digest


def code_digest(config: Config, role: str, files: Iterable) -> str:
    """`files`: the bundle's files (bundle.BundleFile: relpath, mode, sha256)."""
    others = {s.script for s in config.steps.all() if s.role != role}
    own = getattr(config.steps, role).script
    others.discard(own)
    config_rel = _relative(config)
    kept = []
    for f in files:
        rel = f.relpath
        name = rel.rsplit("/", 1)[-1]
        if rel in others or rel == config_rel or (rel != own and (name in _NOT_CODE_NAMES
                                                                  or rel.endswith(_NOT_CODE_SUFFIXES))):
            continue
        kept.append((rel, f.mode, f.sha256))
    return _digest(sorted(kept))


def requirements_digest(files: Iterable) -> str:
    for f in files:
        if f.relpath == "requirements.txt":
            return _digest(f.sha256)
    return _digest("")


def config_digest(step: StepConfig) -> str:
    section = {k: v for k, v in asdict(step).items() if k not in _NOT_CONFIG}
    return _digest(section)


def image_of(step: StepConfig, region: str) -> str:
    """What names the step's container: the image itself for framework 'image',
    else the framework image of that version in that region (looked up from
    these by the SageMaker SDK's tables when the definition is rendered)."""
    if step.framework == "image" and step.image_uri:
        return step.image_uri
    return f"{step.framework}:{step.framework_version or ''}@{region}"


objects_digest = cache_rules.objects_digest  # (relative key or path, ETag or SHA-256) pairs, in any order


def step_keys(config: Config, files: Sequence, inputs: Mapping[str, str], region: Optional[str] = None
              ) -> Dict[str, StepKey]:
    """The three steps' keys. `files`: the bundle's files; `inputs`: preprocessing
    input name -> objects_digest of its data (every input of the config)."""
    region = region or config.aws.region
    files = list(files)
    requirements = requirements_digest(files)
    static = {role: static_parts(config, role, files, requirements, region) for role in ROLES}
    fed = {i.name: inputs.get(i.name, "") for i in config.steps.preprocessing.inputs}
    return {role: StepKey(role, key, parts) for role, (key, parts) in cache_rules.chain(static, fed).items()}


def static_parts(config: Config, role: str, files: Sequence, requirements: str, region: str) -> Dict[str, str]:
    """The four parts the repo and config fix (cache_rules.STATIC_PARTS)."""
    step = getattr(config.steps, role)
    return {"code": code_digest(config, role, files), "requirements": requirements,
            "config": config_digest(step), "image": _digest(image_of(step, region))}


def _relative(config: Config) -> str:
    try:
        return config.path.resolve().relative_to(config.repo.resolve()).as_posix()
    except ValueError:
        return ""
