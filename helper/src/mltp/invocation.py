"""One invocation of the mltp command: the repo, its loaded config, the run
context and where output goes, made once by the CLI and handed to the verb
(with the AWS clients the CLI chose: real AWS, or the local emulator).

The config is read once per invocation: `run` hands the same Invocation to
sync, deploy, start and wait instead of each reading config.yaml again."""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

from . import config as config_mod
from .config import Config
from .context import RunContext, make_context

Echo = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class Invocation:
    repo: Path
    config: Config
    run: RunContext
    echo: Echo = _print  # where a verb's progress lines go (the CLI passes click.echo)

    def pointed_at(self, endpoint_url: Optional[str]) -> "Invocation":
        """The same invocation against another endpoint (the local emulator, once started)."""
        return replace(self, run=replace(self.run, endpoint_url=endpoint_url))


def load(repo: Path, config_file: Optional[str] = None, *, run_name: Optional[str] = None,
         region: Optional[str] = None, endpoint_url: Optional[str] = None, report_dir: Optional[str] = None,
         echo: Echo = _print) -> Invocation:
    """The config loaded (exit 2 on a bad one) and the run context made from it and the environment."""
    cfg = config_mod.load(repo, config_file)
    run = make_context(cfg, run_name=run_name, region=region, endpoint_url=endpoint_url, report_dir=report_dir)
    return Invocation(Path(repo), cfg, run, echo)
