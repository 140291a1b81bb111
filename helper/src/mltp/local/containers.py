"""What SageMaker's framework containers ship, for the local environments (envs.py).

A local run builds one virtualenv per (framework, framework_version) with the
container's main packages at the container's versions, so a script that works
locally finds the same libraries on AWS. The versions come from the files AWS
builds the images from:

- sklearn: aws/sagemaker-scikit-learn-container, docker/<version>/base/Dockerfile.cpu
  (the `pip install scikit-learn==...` line and the Python version) and the
  repository's requirements.txt of that release (numpy, pandas, scipy);
- xgboost: aws/sagemaker-xgboost-container, docker/<version>/base/Dockerfile.cpu
  (XGBOOST_VERSION, PYTHON_VERSION) and requirements.txt of that release;
- pytorch: aws/deep-learning-containers, pytorch/training/buildspec.yml and the
  CPU Dockerfile of each version (torch, torchvision, numpy).

`python` is the container's interpreter: an agent with another Python gets the
nearest versions that install there (envs.py says which, once). Add a row when
SageMaker publishes a new container; a version with no row gets a virtualenv
with the toolkit and requirements.txt only, and the run says so.
"""

from typing import Dict, Optional

# (framework, framework_version) -> {"python": container Python, "packages": {name: version}};
# the first package is the framework itself.
CONTAINERS: Dict[tuple, dict] = {
    ("sklearn", "0.23-1"): {"python": "3.7", "packages": {
        "scikit-learn": "0.23.2", "numpy": "1.19.2", "pandas": "1.1.3", "scipy": "1.5.3"}},
    ("sklearn", "1.0-1"): {"python": "3.8", "packages": {
        "scikit-learn": "1.0.2", "numpy": "1.19.5", "pandas": "1.1.3", "scipy": "1.5.3"}},
    ("sklearn", "1.2-1"): {"python": "3.9", "packages": {
        "scikit-learn": "1.2.1", "numpy": "1.24.1", "pandas": "1.1.3", "scipy": "1.8.0"}},
    ("sklearn", "1.4-2"): {"python": "3.10", "packages": {
        "scikit-learn": "1.4.2", "numpy": "2.1.0", "pandas": "2.2.3", "scipy": "1.14.1"}},
    ("xgboost", "1.5-1"): {"python": "3.8", "packages": {
        "xgboost": "1.5.2", "numpy": "1.21.6", "pandas": "1.2.4", "scipy": "1.6.2", "scikit-learn": "0.24.1"}},
    ("xgboost", "1.7-1"): {"python": "3.8", "packages": {
        "xgboost": "1.7.4", "numpy": "1.21.6", "pandas": "1.2.4", "scipy": "1.6.2", "scikit-learn": "0.24.1"}},
    ("pytorch", "2.1"): {"python": "3.10", "packages": {
        "torch": "2.1.0", "torchvision": "0.16.0", "numpy": "1.26.4"}},
    ("pytorch", "2.3.0"): {"python": "3.11", "packages": {
        "torch": "2.3.0", "torchvision": "0.18.0", "numpy": "1.26.4"}},
}


def container(framework: str, version: Optional[str]) -> Optional[dict]:
    """The row of a framework container, None for framework 'image' or an unknown version."""
    return CONTAINERS.get((framework, version or ""))
