"""`mltp logs`: the run's history and job logs merged by time."""

from pathlib import Path
from typing import Callable, Optional

from ..invocation import Invocation


def logs(inv: Invocation, clients, run: Optional[str] = None, follow: bool = False, export: Optional[str] = None,
         poll_seconds: float = 5.0):
    """`export` is an S3 URI, or "" for the default place beside the run's
    artifacts; lines go to `inv.echo` as they come (--follow)."""
    from .. import runlogs

    if export is not None:
        return runlogs.export(inv.run, clients, run, export or None, echo=inv.echo)
    return runlogs.show(inv.run, clients, run, follow=follow, echo=inv.echo, poll_seconds=poll_seconds)


def logs_local(repo: Path, run: Optional[str], echo: Callable[[str], None]):
    """`mltp logs --local`: a local run's log from its files; no AWS, no emulator, no config."""
    from .. import runlogs

    return runlogs.show_local(Path(repo), run, echo=echo)
