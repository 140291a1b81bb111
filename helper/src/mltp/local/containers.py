"""What SageMaker's framework containers ship, for the local environments (envs.py).

A local run builds one virtualenv per (framework, framework_version) with the
container's main packages at the container's versions, so a script that works
locally finds the same libraries on AWS. The rows, and where each comes from,
are in mltp/framework_containers.py (validation reads them too); this module
is the local run's view of them.

`python` is the container's interpreter: an agent with another Python gets the
nearest versions that install there (envs.py says which, once); for the main
package versions.py decides first, before any job, and refuses a different
major version unless the run allows the nearest one.
"""

from typing import Dict, Optional

from .. import framework_containers

# (framework, framework_version) -> {"python": container Python, "packages": {name: version}};
# the first package is the framework itself. The table's own dict (tests patch rows in it).
CONTAINERS: Dict[tuple, dict] = framework_containers.ROWS


def container(framework: str, version: Optional[str]) -> Optional[dict]:
    """The row of a framework container, aliases followed; None for framework 'image' or an unknown version."""
    if (framework, version or "") in CONTAINERS:
        return CONTAINERS[(framework, version or "")]
    return framework_containers.row(framework, version)


def main_package(row: dict) -> str:
    """The framework itself: the first package of a row."""
    return next(iter(row["packages"]))
