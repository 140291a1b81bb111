"""The checks of `steps.training.algorithm` (a SageMaker built-in algorithm,
mltp/algorithms): it replaces the script, so the keys that only make sense
with a script are refused beside it; its framework_version must be one of the
algorithm's images offered in the region; its hyperparameters are checked as
the algorithm's container checks them, so a bad one fails `validate` instead
of a training job."""

from typing import List

from .. import algorithms
from ..yaml_source import Document, Problem, key_path
from .display import _suggest

KEY = ("steps", "training")


def algorithm_problems(doc: Document) -> List[Problem]:
    data = doc.value
    steps = data.get("steps") if isinstance(data, dict) else None
    step = steps.get("training") if isinstance(steps, dict) else None
    if not isinstance(step, dict) or not isinstance(step.get("algorithm"), str):
        return []
    algorithm = algorithms.get(step["algorithm"])
    if algorithm is None:
        return []  # the schema reports an unknown name

    out: List[Problem] = []

    def add(key: tuple, message: str) -> None:
        out.append(Problem(doc.line_of(KEY + key), key_path(KEY + key), message))

    if "script" in step:
        add(("script",), f"a training step runs either a script or the built-in algorithm '{algorithm.name}', "
                         "not both: remove script (or algorithm)")
    framework = step.get("framework")
    if isinstance(framework, str) and framework != algorithm.framework:
        add(("framework",), f"the built-in algorithm '{algorithm.name}' runs in its own {algorithm.framework} image: "
                            f"remove framework (or set it to {algorithm.framework})")
    if step.get("image_uri") is not None:
        add(("image_uri",), f"the built-in algorithm '{algorithm.name}' uses SageMaker's image of framework_version: "
                            "remove image_uri")
    version = step.get("framework_version")
    if isinstance(version, str):
        if version not in algorithm.versions:
            recent = ", ".join(algorithm.versions[-5:])
            add(("framework_version",), f"the built-in algorithm '{algorithm.name}' has no version '{version}'"
                                        f"{_suggest(version, list(algorithm.versions))}; its versions: {recent}")
        else:
            region = data.get("aws", {}).get("region") if isinstance(data.get("aws"), dict) else None
            offered = algorithms.images.regions(algorithm.framework, version)
            if isinstance(region, str) and offered and region not in offered:
                add(("framework_version",), f"the built-in algorithm '{algorithm.name}' {version} is not offered "
                                            f"in region {region}")
    hyperparameters = step.get("hyperparameters")
    hyperparameters = hyperparameters if isinstance(hyperparameters, dict) else {}
    for name, message in algorithm.hyperparameter_problems(
            {k: v for k, v in hyperparameters.items() if isinstance(v, (str, int, float, bool))}):
        if name and name in hyperparameters:
            add(("hyperparameters", name), message)
        elif "hyperparameters" in step:
            add(("hyperparameters",), message)
        else:
            add(("algorithm",), message)
    return out
