"""`mltp run REPO --local`: the whole pipeline on this machine, no AWS account.

It starts the AWS API emulator in-process and then runs the very same
validate -> sync -> deploy -> start -> wait path as on AWS against it; only the
SageMaker jobs are executed by `runner.LocalJobRunner` instead of SageMaker.
"""

import contextlib
import gc
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Optional, Sequence

import click

from ..errors import InvalidInput, MltpError

# Locally the run is seconds long: follow it closely.
LOCAL_POLL_SECONDS = 0.2


def run_local(repo: Path, config: Optional[str], run_name: Optional[str] = None, region: Optional[str] = None,
              report_dir: Optional[str] = None, timeout: Optional[float] = None, python: Optional[str] = None,
              no_wait: bool = False, inputs: Sequence[str] = (), fetch_inputs: bool = False, **_ignored) -> None:
    from .. import pipeline

    if no_wait:
        raise InvalidInput("--no-wait cannot be used with --local: the emulator lives only as long as mltp runs")
    # Bad input fails fast, before anything starts.
    validated = pipeline.validate(repo, config, run_name=run_name, region=region, report_dir=report_dir)
    # The run name is this run's alone while it lives (locks.py): a second local run of the repo
    # with the same --run-name (or MLTP_RUN_NAME) is exit 2, one with a default name takes the next free name.
    validated, run_lock = _claim_run_name(validated, explicit=run_name is not None, report_dir=report_dir)
    try:
        _run_claimed(validated, repo, config, timeout, python, inputs, fetch_inputs)
    finally:
        run_lock.release()


def _claim_run_name(validated, explicit: bool, report_dir: Optional[str]):
    from . import locks

    ctx = validated.context
    name, lock = locks.claim_run(ctx.config.repo, ctx.run_name, explicit)
    if name != ctx.run_name:
        click.echo(f"local: another local run of this repo is named {ctx.run_name}; this one is {name}")
        reports = ctx.report_dir if report_dir else ctx.config.repo / ".mltp" / "runs" / name
        validated = replace(validated, context=replace(ctx, run_name=name, report_dir=reports))
    return validated, lock


def _run_claimed(validated, repo: Path, config: Optional[str], timeout: Optional[float], python: Optional[str],
                 inputs: Sequence[str], fetch_inputs: bool) -> None:
    from .. import pipeline
    from ..aws import Clients

    ctx = validated.context
    from . import inputs as local_inputs

    # Every input needs local data (exit 2 before anything starts); --fetch-inputs
    # copies the rest from real S3 now, while the user's own credentials are still
    # the process's: _local_credentials() replaces them before the emulator starts.
    staged, to_fetch = local_inputs.resolve(ctx.config, local_inputs.parse_overrides(inputs), fetch_inputs)
    try:
        with _collector_paused():
            from . import emulator
            from .runner import LocalJobRunner
    except ImportError as exc:  # moto is the optional `local` extra
        raise InvalidInput(f"--local needs the emulator: pip install 'mltp[local]' ({exc})")
    if to_fetch:
        staged += local_inputs.fetch(Clients(ctx.region, ctx.endpoint_url), to_fetch, ctx.config.repo)

    _local_credentials()

    from ..housekeeping import fresh_run_folder, gitignore_note, trim_work

    trim_work(ctx.config.repo, current=ctx.run_name)  # .mltp/work/ keeps the newest runs only
    fresh_run_folder(ctx.config.repo, ctx.run_name)
    note = gitignore_note(ctx.config.repo)
    if note:
        click.echo(note)
    environments = step_environments(ctx.config, python)  # before the emulator: a build may take a minute
    server, endpoint = emulator.start_local_moto()
    clients = Clients(ctx.region, endpoint)
    runner = LocalJobRunner(clients, ctx.config.repo / ".mltp" / "work" / ctx.run_name, python=python,
                            environments=environments, logs_dir=Path(ctx.report_dir) / "logs")
    emulator.install_sfn_patches(sync_poll_seconds=LOCAL_POLL_SECONDS)
    emulator.install_sagemaker_backend_hook(runner)
    pythons = sorted({env.python for env in environments.values()})
    click.echo(f"local: AWS emulator at {endpoint}; jobs run as local processes with {', '.join(pythons)}")
    if not runner.sandboxed:
        click.echo(local_inputs.fallback_notice(ctx.config, runner.sandbox_reason))
    # The same validated repo, now pointed at the emulator.
    validated = replace(validated, context=replace(ctx, endpoint_url=endpoint))
    group = ctx.config.registry.model_package_group
    restored = False
    registry_lock = None
    try:
        _create_bucket(clients, ctx.config.aws.bucket, ctx.region)
        local_inputs.stage(clients, staged, ctx.region, existing=[ctx.config.aws.bucket])
        from . import locks

        # From restore to save the local registry is this run's: another run meanwhile
        # would register the same version number, and one of the two would be lost.
        registry_lock = locks.registry(ctx.config.repo, group, click.echo)
        _restore_registry(clients, ctx.config)
        restored = True
        pipeline.run_checked(validated, repo, config, timeout=timeout, report_dir=str(ctx.report_dir),
                             poll_seconds=LOCAL_POLL_SECONDS)
    finally:
        try:
            _keep_artifacts(clients, ctx)
            _notifications(clients, ctx)
        except MltpError:
            pass
        runner.stop()
        try:
            if restored:  # never overwrite the store with a half-restored registry
                from . import registry_store

                registry_store.save(clients, ctx.config.repo, group)
        finally:
            if registry_lock is not None:
                registry_lock.release()
            emulator.stop_local_moto(server)


def step_environments(config, python: Optional[str] = None) -> dict:
    """Step role -> the local environment its jobs run in (envs.py): one per
    (framework, framework_version), or, with --python / MLTP_PYTHON, that
    interpreter with the toolkit and requirements.txt added beside it."""
    from . import envs

    requirements = config.repo / "requirements.txt"
    built = {}
    out = {}
    for step in config.steps.all():
        key = ("override", python) if python else (step.framework, step.framework_version)
        if key not in built:
            built[key] = envs.prepare(step.framework, step.framework_version, requirements, override=python,
                                      say=click.echo)
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


def _local_credentials() -> None:
    """The emulator must never see real credentials, nor this process reach real AWS."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(var, None)
    os.environ["AWS_ACCESS_KEY_ID"] = "mltp-local"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "mltp-local"


def _restore_registry(clients, config) -> None:
    from . import registry_store

    count = registry_store.restore(clients, config.repo, config.registry.model_package_group,
                                   config.description or "")
    if count:
        click.echo(f"local: restored {count} version{'s' if count != 1 else ''} of model package group "
                   f"{config.registry.model_package_group} from .mltp/registry/{config.registry.model_package_group}/")


@contextlib.contextmanager
def registry_session(config, region: Optional[str] = None) -> Iterator:
    """Clients of a fresh emulator holding the repo's local registry, saved back
    on the way out: what `mltp models|approve|reject|fetch-model --local` use."""
    try:
        with _collector_paused():
            from . import emulator, registry_store
    except ImportError as exc:  # moto is the optional `local` extra
        raise InvalidInput(f"--local needs the emulator: pip install 'mltp[local]' ({exc})")
    from ..aws import Clients

    from . import locks

    _local_credentials()
    server, endpoint = emulator.start_local_moto()
    clients = Clients(region or config.aws.region, endpoint)
    try:
        # The registry is this session's from restore to save (locks.py).
        with locks.registry(config.repo, config.registry.model_package_group, click.echo):
            _create_bucket(clients, config.aws.bucket, clients.region)
            _restore_registry_quiet(clients, config)
            yield clients
            registry_store.save(clients, config.repo, config.registry.model_package_group)
    finally:
        emulator.stop_local_moto(server)


def _restore_registry_quiet(clients, config) -> None:
    from . import registry_store

    registry_store.restore(clients, config.repo, config.registry.model_package_group, config.description or "")


def _create_bucket(clients, bucket: str, region: str) -> None:
    """On AWS the bucket exists already (docs/contract.md, 2.2); the fresh emulator has none."""
    kwargs = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    clients.s3.create_bucket(**kwargs)


def _notifications(clients, ctx) -> None:
    """With `notify`, what the run would have sent on AWS: notifications.json in
    the report folder, and one line each."""
    if getattr(ctx.config, "notify", None) is None:
        return
    from .. import notifications

    sent = notifications.local_notifications(ctx.config, Path(ctx.report_dir), ctx.region, clients.account_id())
    for line in notifications.lines(sent) or ["notify: nothing would have been sent for this run"]:
        click.echo(line)


def _keep_artifacts(clients, ctx) -> None:
    """The model and evaluation.json land beside the report (docs/contract.md, 8.3), since
    the emulator's S3 vanishes with it."""
    from .. import naming
    from .runner import split_s3

    target = Path(ctx.report_dir)
    artifacts = naming.run_artifacts(ctx.config, ctx.state_machine, ctx.run_name)
    for uri, name in ((artifacts.model, "model.tar.gz"), (artifacts.evaluation, "evaluation.json")):
        bucket, key = split_s3(uri)
        try:
            target.mkdir(parents=True, exist_ok=True)
            clients.s3.download_file(bucket, key, str(target / name))
        except Exception:  # not produced: the run stopped before that step
            continue
    work = ctx.config.repo / ".mltp" / "work" / ctx.run_name
    if work.is_dir():
        logs = target / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for log in work.glob("*.log"):
            shutil.copyfile(log, logs / log.name)
