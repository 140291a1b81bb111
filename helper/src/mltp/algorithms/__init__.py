"""SageMaker's built-in algorithms that a training step may name instead of a
script (`steps.training.algorithm`, docs/contract.md 3.3.1).

A built-in algorithm is a container image that trains from data and
hyperparameters alone ("algorithm mode"): no train.py, no code bundle. Each
entry of `ALGORITHMS` says what mltp needs to render the job for AWS and to
reproduce it locally:

- `framework`: the framework whose local environment (local/envs.py,
  local/containers.py) runs the local implementation, and whose
  `framework_version` picks the image;
- `repository` and the image table (images.py, generated from the SageMaker
  SDK's own table, so validate and render need not import the SDK);
- `program`: the local implementation, a stand-alone script of this package
  run with the environment's interpreter inside the job's /opt/ml tree, as the
  algorithm's container runs its entry point;
- `versions`: the framework versions whose image runs the algorithm as mltp
  reproduces it (older images of another lineage are left out).

Adding an algorithm: an entry here, its rows in images.py
(`python -m mltp.algorithms.images`), its program, and its hyperparameter
checks (`hyperparameter_problems`).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from . import images


@dataclass(frozen=True)
class Algorithm:
    name: str
    framework: str
    repository: str
    default_version: str
    versions: Tuple[str, ...]
    program: str  # file name, beside this module
    # hyperparameters (as config.yaml gives them) -> [(name or "", problem)]
    hyperparameter_problems: Callable[[Dict[str, object]], List[Tuple[str, str]]]
    # the channel the job cannot run without
    required_channels: Tuple[str, ...] = ("train",)

    def program_path(self) -> Path:
        return Path(__file__).resolve().parent / self.program


def _xgboost_problems(hyperparameters: Dict[str, object]) -> List[Tuple[str, str]]:
    from . import xgboost_algorithm

    return xgboost_algorithm.hyperparameter_problems(hyperparameters)


ALGORITHMS: Dict[str, Algorithm] = {
    "xgboost": Algorithm(
        name="xgboost",
        framework="xgboost",
        repository="sagemaker-xgboost",
        default_version="1.7-1",
        # The open-source container's releases (aws/sagemaker-xgboost-container);
        # version "1" is the older, closed algorithm of another contract.
        versions=tuple(v for v in images.versions("xgboost") if v != "1"),
        program="xgboost_algorithm.py",
        hyperparameter_problems=_xgboost_problems,
    ),
}


def get(name: Optional[str]) -> Optional[Algorithm]:
    return ALGORITHMS.get(name or "")


def image_uri(name: str, version: str, region: str) -> str:
    """The algorithm's training image for a region, as the SageMaker SDK's
    `image_uris.retrieve(name, region, version)` gives it."""
    return images.uri(ALGORITHMS[name].framework, version, region)


def from_image(image: str) -> Optional[Tuple[Algorithm, str]]:
    """The algorithm and version an image URI of `image_uri` names, if any: the
    local runner knows an algorithm-mode job by its image."""
    path = image.split("/", 1)[-1]
    repository, _, tag = path.partition(":")
    for algorithm in ALGORITHMS.values():
        if repository != algorithm.repository:
            continue
        for version in algorithm.versions:
            if tag == images.tag(algorithm.framework, version):
                return algorithm, version
    return None
