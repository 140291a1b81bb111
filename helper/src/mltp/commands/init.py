"""`mltp init`: a new model repo that `mltp run DIR --local` passes as it is."""

from pathlib import Path
from typing import List, Optional


def init(directory: Path, name: Optional[str] = None, framework: str = "sklearn", region: Optional[str] = None,
         bucket: Optional[str] = None) -> List[str]:
    """The files written, in order."""
    from .. import scaffold

    return list(scaffold.init(directory, name=name, framework=framework, region=region, bucket=bucket))
