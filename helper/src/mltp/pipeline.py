"""The verbs of CONTRACT section 5, composed from the modules that do the work.

`run` is validate -> sync -> deploy -> start -> wait; the local run calls the
very same functions against the embedded emulator, so there is one path.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import click

from . import config as config_mod
from . import repo as repo_mod
from .config import Config, display
from .context import RunContext, make_context
from .errors import InvalidInput

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Validated:
    config: Config
    files: List[repo_mod.RepoFile]
    context: RunContext

    def summary(self) -> str:
        cfg, ctx = self.config, self.context
        size = sum(f.size for f in self.files)
        registration = "registers on success" if ctx.register else "gate only, no registration"
        rules = ", ".join(f"{r.metric} {r.describe()}" for r in cfg.gate)
        return (
            f"ok: {display(cfg.path)} valid; {len(self.files)} files to ship ({size / 1024:.1f} KiB), "
            f"3 scripts parse; state machine {ctx.state_machine} ({registration}); gate: {rules}"
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
            )
        )


def validate(repo: Path, config: Optional[str], info_file: Optional[str] = None, **options) -> Validated:
    """Config and repo checks; every problem at once; raises InvalidInput (exit 2)."""
    cfg = config_mod.load(repo, config)
    files, problems = repo_mod.check(cfg)
    if problems:
        where = "" if display(repo) == "." else f" {display(repo)}"
        raise InvalidInput(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the model repo{where}", problems)
    ctx = make_context(cfg, **_context_options(options))
    result = Validated(cfg, files, ctx)
    if info_file:
        Path(info_file).parent.mkdir(parents=True, exist_ok=True)
        Path(info_file).write_text(result.info_lines(), encoding="utf-8")
    return result


def _context_options(options: dict) -> dict:
    keys = ("run_name", "region", "endpoint_url", "report_dir")
    return {k: options.get(k) for k in keys}


def render(repo: Path, config: Optional[str]) -> str:
    from . import definition

    return definition.render(config_mod.load(repo, config))
