"""`mltp start`: start the run on the current files' code, or re-attach to the run of that name."""

from dataclasses import dataclass
from typing import List, Optional

from ..config import Config
from ..invocation import Invocation
from .validate import Validated, validate


@dataclass(frozen=True)
class Started:
    result: object  # runs.StartResult
    champion: str  # who the challenger is compared with; "" when re-attached

    def lines(self) -> List[str]:
        return [self.result.summary()] + ([self.champion] if self.champion else [])


def start(inv: Invocation, clients, checked: Optional[Validated] = None, bundle=None,
          overrides: Optional[dict] = None) -> Started:
    """Verifies the S3 prefix against the files (`bundle`: already hashed) before starting.
    `overrides`: execution input values decided by the caller (resume) instead of the step cache's plan."""
    from .. import bundle as bundle_mod
    from .. import runs

    if checked is None:
        checked = validate(inv)
    from .plan import for_run

    champion = find_champion(checked.config, clients)
    bundle = bundle or bundle_mod.make(checked.files)
    if overrides is None and not _exists(checked.context, clients):
        overrides = for_run(inv, clients, bundle)
    result = runs.start(checked.context, clients, bundle, champion=champion, overrides=overrides)
    return Started(result, "" if result.attached else champion_line(champion, checked.config))


def _exists(ctx, clients) -> bool:
    """The run was started before (start re-attaches): no new plan for it."""
    import botocore.exceptions

    from .. import runs

    try:
        return runs.describe_execution(clients, runs.execution_arn(ctx, clients)) is not None
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
        return False  # runs.start says what AWS refuses


def find_champion(cfg: Config, clients) -> dict:
    """The execution input's Champion (registry.champion_input). When the
    registry cannot be read, a run without champion rules goes on (the
    comparison says why it is missing); one with champion rules stops (exit 5)."""
    from .. import registry
    from ..errors import AwsRefused

    try:
        return registry.champion_input(clients, cfg)
    except AwsRefused as exc:
        if any(rule.beat_champion for rule in cfg.gate):
            raise
        return {"Reason": f"could not read the registry: {exc.message}"}


def champion_line(champion: dict, cfg: Config) -> str:
    """The log line saying who the challenger is compared with, or why nobody."""
    rules = [r for r in cfg.gate if r.beat_champion]
    if champion.get("Version") is None:
        why = champion.get("Reason", "no champion")
        suffix = f"; champion rules pass ({', '.join(r.metric for r in rules)})" if rules else ""
        return f"champion: none ({why}){suffix}"
    values = ", ".join(f"{k}={v:g}" for k, v in sorted(champion.get("Metrics", {}).items())) or "no gate values recorded"
    return f"champion: {cfg.registry.model_package_group}/{champion['Version']} (Approved): {values}"
