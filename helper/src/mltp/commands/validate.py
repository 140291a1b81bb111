"""`mltp validate`: the config and repo checks, every problem at once (exit 2)."""

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from .. import repo as repo_mod
from ..config import Config, display
from ..context import RunContext
from ..invocation import Invocation, check_repo


@dataclass(frozen=True)
class Validated:
    config: Config
    files: List[repo_mod.RepoFile]
    context: RunContext
    skipped: Tuple[str, ...] = ()  # symlinks to ignored files, notebooks with outputs (repo.list_files)

    def summary(self) -> str:
        cfg, ctx = self.config, self.context
        size = sum(f.size for f in self.files)
        registration = "registers on success" if ctx.register else "gate only, no registration"
        rules = ", ".join(f"{r.metric} {r.describe()}" for r in cfg.gate)
        skipped = repo_mod.skipped_note(self.skipped)
        scripts = sum(1 for step in cfg.steps.all() if not getattr(step, "algorithm", None))
        algorithm = "".join(f", training with the built-in algorithm {step.algorithm} {step.framework_version}"
                            for step in cfg.steps.all() if getattr(step, "algorithm", None))
        return (
            f"ok: {display(cfg.path)} valid; {len(self.files)} files to ship ({size / 1024:.1f} KiB){skipped}, "
            f"{scripts} scripts parse{algorithm}; state machine {ctx.state_machine} ({registration}); gate: {rules}"
        )

    def info_lines(self) -> str:
        ctx = self.context
        return "".join(
            f"{k}={v}\n"
            for k, v in (
                ("name", self.config.name),
                ("schedule", self.config.schedule or ""),
                ("state_machine", ctx.state_machine),
                ("register", "true" if ctx.register else "false"),
                ("run_name", ctx.run_name),
                ("region", ctx.region),
                ("retrain", "true" if self.config.retrain else "false"),
            )
        )


def validate(inv: Invocation, info_file: Optional[str] = None) -> Validated:
    """The repo checks on the loaded config (done already when the CLI made the
    invocation with check=True); every problem at once; raises InvalidInput (exit 2)."""
    files, skipped = (inv.files, inv.skipped) if inv.files is not None else check_repo(inv.config, inv.repo)
    result = Validated(inv.config, list(files), inv.run, skipped)
    if info_file:
        Path(info_file).parent.mkdir(parents=True, exist_ok=True)
        Path(info_file).write_text(result.info_lines(), encoding="utf-8")
    return result
