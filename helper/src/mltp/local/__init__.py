"""`mltp run REPO --local`: the whole pipeline on this machine, no AWS account.

The CLI enters `session.LocalAws`, which starts the AWS API emulator
in-process and yields its clients; the very same validate -> sync -> deploy ->
start -> wait path as on AWS then runs against it; only the SageMaker jobs are
executed by `runner.LocalJobRunner` instead of SageMaker. Nothing below the CLI
imports this package: the environment is chosen at the edge.
"""

import contextlib
import gc
import sys
from typing import Iterator, Optional

import click

# Locally the run is seconds long: follow it closely. The interpreter's `.sync`
# wait polls a job the local runner does not run at this interval.
LOCAL_POLL_SECONDS = 0.2
# The waiter's interval in a local run when no history event woke it first
# (each new event does: emulator.HistoryClock).
LOCAL_FOLLOW_SECONDS = 1.0


def step_environments(config, python: Optional[str] = None, allow_nearest: bool = False,
                      notes: Optional[list] = None) -> dict:
    """Step role -> the local environment its jobs run in (envs.py): one per
    (framework, framework_version), or, with --python / MLTP_PYTHON, that
    interpreter with the toolkit and requirements.txt added beside it.

    Which version of each framework's own package installs on this Python is
    decided for every step first (versions.py): a version that cannot be had
    stops the run (exit 2) before anything is built. What was said about the
    framework's own package goes to `notes` too, for the run's report (the
    supporting packages' nearest versions are said in the log only)."""
    from . import envs, versions

    requirements = config.repo / "requirements.txt"
    choices = {} if python else versions.choose_for_run(config, requirements, allow_nearest, say=click.echo)
    if notes is not None:
        notes.extend(versions.notes(list(choices.values())))
    built = {}
    out = {}
    for step in config.steps.all():
        key = ("override", python) if python else (step.framework, step.framework_version)
        # A built-in algorithm's container installs no requirements.txt: neither does its environment.
        needs = None if getattr(step, "algorithm", None) else requirements
        key += (needs is not None and needs.is_file(),)
        if key not in built:
            choice = choices.get((step.framework, step.framework_version or ""))
            built[key] = envs.prepare(step.framework, step.framework_version, needs, override=python,
                                      say=click.echo, row=choice.row if choice else None)
        out[step.role] = built[key]
    return out


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Importing the emulator (moto's backends, its ASL interpreter) builds a
    few hundred thousand objects that live as long as the process; with Python's
    cyclic collector running meanwhile, the import takes about a third longer.
    The first time, what exists afterwards is frozen (gc.freeze), so the
    collections of the rest of the run do not walk it again either."""
    first = "mltp.local.emulator" not in sys.modules
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if first:
            gc.freeze()
        if collecting:
            gc.enable()
