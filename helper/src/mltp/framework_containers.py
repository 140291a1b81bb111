"""What each SageMaker framework container holds: one row per version that
SageMaker offers for the frameworks mltp accepts (docs/contract.md, 8.2).

`validate` accepts a `framework_version` only where this table has a row (or
an alias of one), and a local run builds its environment from the row
(local/envs.py): the container's main package at the container's version,
the supporting packages at the image's pins, and the container's Python, which
says which interpreter the versions were built for. Pure data, no imports
beyond typing: validation reads it without loading the local run.

Where each row comes from (the files AWS builds the images from):

- sklearn: aws/sagemaker-scikit-learn-container, branch of the version:
  docker/<version>/base/Dockerfile.cpu (PYTHON_VERSION; 0.20.0 installs
  scikit-learn there) and requirements.txt (scikit-learn, numpy, pandas,
  scipy). 0.20.0's scipy is conda's unpinned one, the last built for its
  Python 3.7 (1.7.3).
- xgboost: aws/sagemaker-xgboost-container, branch or tag of the version:
  docker/<version>/base/Dockerfile.cpu (XGBOOST_VERSION or `xgboost==`, the
  conda Python) and requirements.txt (numpy, pandas, scipy, scikit-learn).
- pytorch: aws/deep-learning-containers, pytorch/training/docker/<x.y>/py3/
  Dockerfile.cpu (PYTHON_VERSION, the torchvision wheel, numpy where pinned:
  1.16.4 up to 1.5, 1.22.2 for 1.9 to 1.12, "numpy<2" from 2.x on);
  0.4 to 1.3 were the older sagemaker-pytorch-container images on Python 3.6.
  Where the image leaves numpy unpinned the row has the last release for the
  container's Python that the torch release was built against.
- the versions themselves and their aliases: the SageMaker Python SDK's image
  URI table (sagemaker/image_uri_config/<framework>.json, training scope); a
  test keeps this table equal to it.

Add a row when SageMaker publishes a container; the test names the missing one.
"""

from typing import Dict, Optional, Tuple


def _row(python: str, **packages: str) -> dict:
    """A row: the container's Python and its packages, the main one first.
    Package names are given with '_' for '-' (scikit_learn -> scikit-learn)."""
    return {"python": python, "packages": {name.replace("_", "-"): v for name, v in packages.items()}}


def _torch(python: str, torch: str, torchvision: str, numpy: str) -> dict:
    return _row(python, torch=torch, torchvision=torchvision, numpy=numpy)


# (framework, framework_version) -> {"python": the container's Python, "packages": {name: version}};
# the first package is the framework itself (its "main package"). A row's content is part of the
# key of its cached environment (envs.plan): changing a row rebuilds that environment once.
ROWS: Dict[Tuple[str, str], dict] = {
    ("sklearn", "0.20.0"): _row("3.7", scikit_learn="0.20.0", numpy="1.19.5", pandas="0.25.3", scipy="1.7.3"),
    ("sklearn", "0.23-1"): _row("3.7", scikit_learn="0.23.2", numpy="1.19.2", pandas="1.1.3", scipy="1.5.3"),
    ("sklearn", "1.0-1"): _row("3.8", scikit_learn="1.0.2", numpy="1.19.5", pandas="1.1.3", scipy="1.5.3"),
    ("sklearn", "1.2-1"): _row("3.9", scikit_learn="1.2.1", numpy="1.24.1", pandas="1.1.3", scipy="1.8.0"),
    ("sklearn", "1.4-2"): _row("3.10", scikit_learn="1.4.2", numpy="2.1.0", pandas="2.2.3", scipy="1.14.1"),

    ("xgboost", "0.90-1"): _row("3.7", xgboost="0.90", numpy="1.18.1", pandas="0.25.3", scipy="1.2.2",
                                scikit_learn="0.22.1"),
    ("xgboost", "0.90-2"): _row("3.6", xgboost="0.90", numpy="1.18.4", pandas="1.0.4", scipy="1.2.2",
                                scikit_learn="0.23.1"),
    ("xgboost", "1.0-1"): _row("3.6", xgboost="1.0.0", numpy="1.19.2", pandas="1.1.3", scipy="1.2.2",
                               scikit_learn="0.23.2"),
    ("xgboost", "1.2-1"): _row("3.7", xgboost="1.2.0", numpy="1.19.2", pandas="1.1.3", scipy="1.5.3",
                               scikit_learn="0.23.2"),
    ("xgboost", "1.2-2"): _row("3.7", xgboost="1.2.0", numpy="1.20.3", pandas="1.1.3", scipy="1.5.3",
                               scikit_learn="0.23.2"),
    ("xgboost", "1.3-1"): _row("3.7", xgboost="1.3.3", numpy="1.21.6", pandas="1.2.4", scipy="1.6.2",
                               scikit_learn="0.24.1"),
    ("xgboost", "1.5-1"): _row("3.8", xgboost="1.5.2", numpy="1.21.6", pandas="1.2.4", scipy="1.6.2",
                               scikit_learn="0.24.1"),
    ("xgboost", "1.7-1"): _row("3.8", xgboost="1.7.4", numpy="1.21.6", pandas="1.2.4", scipy="1.6.2",
                               scikit_learn="0.24.1"),
    ("xgboost", "3.0-5"): _row("3.10", xgboost="3.0.5", numpy="2.1.0", pandas="2.2.3", scipy="1.15.0",
                               scikit_learn="1.5.2"),

    ("pytorch", "0.4.0"): _torch("3.6", "0.4.0", "0.2.1", "1.16.4"),
    ("pytorch", "1.0.0"): _torch("3.6", "1.0.0", "0.2.1", "1.16.4"),
    ("pytorch", "1.1.0"): _torch("3.6", "1.1.0", "0.3.0", "1.16.4"),
    ("pytorch", "1.2.0"): _torch("3.6", "1.2.0", "0.4.0", "1.16.4"),
    ("pytorch", "1.3.1"): _torch("3.6", "1.3.1", "0.4.2", "1.16.4"),
    ("pytorch", "1.4.0"): _torch("3.6", "1.4.0", "0.5.0", "1.16.4"),
    ("pytorch", "1.5.0"): _torch("3.6", "1.5.0", "0.6.0", "1.16.4"),
    ("pytorch", "1.6.0"): _torch("3.6", "1.6.0", "0.7.0", "1.19.5"),
    ("pytorch", "1.7.1"): _torch("3.6", "1.7.1", "0.8.2", "1.19.5"),
    ("pytorch", "1.8.0"): _torch("3.6", "1.8.0", "0.9.0", "1.19.5"),
    # The 1.8.1 image reuses the 0.9.0 torchvision wheel built for 1.8.0; 0.9.1 is the one pip pairs with 1.8.1.
    ("pytorch", "1.8.1"): _torch("3.6", "1.8.1", "0.9.1", "1.19.5"),
    ("pytorch", "1.9.0"): _torch("3.8", "1.9.0", "0.10.0", "1.22.2"),
    ("pytorch", "1.9.1"): _torch("3.8", "1.9.1", "0.10.1", "1.22.2"),
    ("pytorch", "1.10.0"): _torch("3.8", "1.10.0", "0.11.1", "1.22.2"),
    ("pytorch", "1.10.2"): _torch("3.8", "1.10.2", "0.11.3", "1.22.2"),
    ("pytorch", "1.11.0"): _torch("3.8", "1.11.0", "0.12.0", "1.22.2"),
    ("pytorch", "1.12.0"): _torch("3.8", "1.12.0", "0.13.0", "1.22.2"),
    ("pytorch", "1.12.1"): _torch("3.8", "1.12.1", "0.13.1", "1.22.2"),
    ("pytorch", "1.13.1"): _torch("3.9", "1.13.1", "0.14.1", "1.26.4"),
    ("pytorch", "2.0.0"): _torch("3.10", "2.0.0", "0.15.1", "1.26.4"),
    ("pytorch", "2.0.1"): _torch("3.10", "2.0.1", "0.15.2", "1.26.4"),
    ("pytorch", "2.1.0"): _torch("3.10", "2.1.0", "0.16.0", "1.26.4"),
    ("pytorch", "2.2.0"): _torch("3.10", "2.2.0", "0.17.0", "1.26.4"),
    ("pytorch", "2.3.0"): _torch("3.11", "2.3.0", "0.18.0", "1.26.4"),
    ("pytorch", "2.4.0"): _torch("3.11", "2.4.0", "0.19.0", "1.26.4"),
    ("pytorch", "2.5.1"): _torch("3.11", "2.5.1", "0.20.1", "1.26.4"),
    ("pytorch", "2.6.0"): _torch("3.12", "2.6.0", "0.21.0", "1.26.4"),
    ("pytorch", "2.7.1"): _torch("3.12", "2.7.1", "0.22.1", "1.26.4"),
    ("pytorch", "2.8.0"): _torch("3.12", "2.8.0", "0.23.0", "1.26.4"),
}

# Short names SageMaker accepts for a version: (framework, alias) -> version. The SDK's version_aliases.
ALIASES: Dict[Tuple[str, str], str] = {
    ("pytorch", "0.4"): "0.4.0", ("pytorch", "1.0"): "1.0.0", ("pytorch", "1.1"): "1.1.0",
    ("pytorch", "1.2"): "1.2.0", ("pytorch", "1.3"): "1.3.1", ("pytorch", "1.4"): "1.4.0",
    ("pytorch", "1.5"): "1.5.0", ("pytorch", "1.6"): "1.6.0", ("pytorch", "1.7"): "1.7.1",
    ("pytorch", "1.8"): "1.8.1", ("pytorch", "1.9"): "1.9.1", ("pytorch", "1.10"): "1.10.2",
    ("pytorch", "1.11"): "1.11.0", ("pytorch", "1.12"): "1.12.1", ("pytorch", "1.13"): "1.13.1",
    ("pytorch", "2.0"): "2.0.1", ("pytorch", "2.1"): "2.1.0", ("pytorch", "2.2"): "2.2.0",
    ("pytorch", "2.3"): "2.3.0", ("pytorch", "2.4"): "2.4.0", ("pytorch", "2.5"): "2.5.1",
    ("pytorch", "2.6"): "2.6.0", ("pytorch", "2.7"): "2.7.1", ("pytorch", "2.8"): "2.8.0",
    ("xgboost", "latest"): "1",
}

# Versions the SDK's table lists that are no framework container: validate refuses them with this reason.
NOT_CONTAINERS: Dict[Tuple[str, str], str] = {
    ("xgboost", "1"): "is the retired XGBoost 0.72 built-in algorithm image, which runs no scripts; "
                      "use a script-mode version such as 1.7-1",
}


def resolve(framework: str, version: Optional[str]) -> Optional[str]:
    """The version a framework_version names, aliases followed ('2.1' -> '2.1.0'); None when unknown."""
    if not version:
        return None
    version = ALIASES.get((framework, version), version)
    return version if (framework, version) in ROWS or (framework, version) in NOT_CONTAINERS else None


def row(framework: str, version: Optional[str]) -> Optional[dict]:
    """The row of a framework container, None for framework 'image' or a version with no row."""
    resolved = resolve(framework, version)
    return ROWS.get((framework, resolved)) if resolved else None


def not_a_container(framework: str, version: Optional[str]) -> Optional[str]:
    """Why validate refuses a version that SageMaker lists but that runs no scripts, else None."""
    resolved = resolve(framework, version)
    return NOT_CONTAINERS.get((framework, resolved)) if resolved else None


def accepted(framework: str) -> list:
    """Every framework_version validate accepts for a framework: the rows' versions and their aliases."""
    versions = [v for (f, v) in ROWS if f == framework]
    return versions + [a for (f, a), v in ALIASES.items() if f == framework and v in versions]
