"""One invocation of the mltp command: the repo, its loaded config, the run
context and where output goes, made once by the CLI and handed to the verb
(with the AWS clients the CLI chose: real AWS, or the local emulator).

The config is read once per invocation: `run` hands the same Invocation to
sync, deploy, start and wait instead of each reading config.yaml again. The
verbs that ship the repo have it checked here too, before the run context is
made, so a repo's problems are all reported together (a symlinked .mltp/
among them)."""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from . import config as config_mod
from . import repo as repo_mod
from .config import Config, display
from .context import RunContext, make_context
from .errors import InvalidInput

Echo = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class Invocation:
    repo: Path
    config: Config
    run: RunContext
    echo: Echo = _print  # where a verb's progress lines go (the CLI passes click.echo)
    # The repo's files as checked (check_repo=True), and the symlinks skipped; None: not checked.
    files: Optional[Tuple[repo_mod.RepoFile, ...]] = None
    skipped: Tuple[str, ...] = ()
    # The step cache (plan.py): --no-cache; and in a local run (local=True) the
    # inputs' local data (local.inputs.LocalInput), what the preprocessing key reads.
    no_cache: bool = False
    local: bool = False
    local_inputs: Tuple = ()

    def pointed_at(self, endpoint_url: Optional[str]) -> "Invocation":
        """The same invocation against another endpoint (the local emulator, once started)."""
        return replace(self, run=replace(self.run, endpoint_url=endpoint_url))


def check_repo(cfg: Config, repo: Path) -> Tuple[Tuple[repo_mod.RepoFile, ...], Tuple[str, ...]]:
    """The repo checks on a loaded config: (files to ship, symlinks skipped);
    every problem at once as InvalidInput (exit 2)."""
    skipped: List[str] = []
    files, problems = repo_mod.check(cfg, skipped)
    if problems:
        where = "" if display(repo) == "." else f" {display(repo)}"
        raise InvalidInput(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the model repo{where}", problems)
    return tuple(files), tuple(skipped)


def load(repo: Path, config_file: Optional[str] = None, *, run_name: Optional[str] = None,
         region: Optional[str] = None, endpoint_url: Optional[str] = None, report_dir: Optional[str] = None,
         echo: Echo = _print, check: bool = False) -> Invocation:
    """The config loaded (exit 2 on a bad one), with `check` the repo checked
    too, and the run context made from it and the environment."""
    cfg = config_mod.load(repo, config_file)
    files, skipped = check_repo(cfg, Path(repo)) if check else (None, ())
    run = make_context(cfg, run_name=run_name, region=region, endpoint_url=endpoint_url, report_dir=report_dir)
    return Invocation(Path(repo), cfg, run, echo, files, skipped)
