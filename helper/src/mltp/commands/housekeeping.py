"""`mltp clean` and `mltp prune` (docs/contract.md, 9.6)."""

from datetime import timedelta
from pathlib import Path

from ..config import display
from ..invocation import Invocation


def clean(repo: Path) -> str:
    """Empty REPO/.mltp/work/ (the local runs' job folders); reports stay."""
    from .. import housekeeping

    freed = housekeeping.clean(repo)
    return f"clean: emptied {display(Path(repo) / housekeeping.WORK_DIR)} ({freed / 1e6:.1f} MB freed)"


def age_of(older_than: str) -> timedelta:
    """--older-than as a timedelta; a bad one is invalid input, said before the config is read."""
    from .. import housekeeping

    return housekeeping.parse_age(older_than)


def prune(inv: Invocation, clients, older_than: str = "30d", yes: bool = False):
    """List (and with `yes`, delete) branch state machines and code prefixes
    nothing needs any more; lines go to `inv.echo` as deletions happen."""
    from .. import housekeeping
    from ..aws import refused

    age = age_of(older_than)
    cfg, echo = inv.config, inv.echo
    with refused("list", f"state machines and s3://{cfg.aws.bucket} code of {cfg.name}"):
        stale = housekeeping.find_stale(cfg, clients, age)
    lines = stale.lines()
    for line in lines:
        echo(line)
    if not lines:
        echo(f"prune: nothing unused for {older_than}")
        return stale
    if not yes:
        echo(f"prune: {len(lines)} unused for {older_than}; nothing deleted (--yes deletes them)")
        return stale
    with refused("delete", f"unused state machines and code of {cfg.name}"):
        housekeeping.delete(stale, clients, echo)
    return stale
