"""The local AWS: an in-process emulator that the CLI enters instead of real
AWS (`mltp run --local`, `mltp models|approve|reject|fetch-model --local`).

`LocalAws` clears the real credentials, builds the step environments, starts
the emulator, stages the inputs and restores the repo's local registry; it
yields the emulator's `Clients`, and on the way out keeps the run's artifacts
and saves the registry back. The verbs below the CLI only see the clients.
"""

import contextlib
import gc
import os
import shutil
import threading
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Optional, Sequence

import click

from ..aws import Clients
from ..context import RunContext
from ..errors import InvalidInput, MltpError
from . import LOCAL_FOLLOW_SECONDS, LOCAL_POLL_SECONDS, _collector_paused, step_environments


class LocalAws:
    """`with LocalAws(config, python, inputs, run=ctx) as clients:` the emulator for one run.

    With `run` (the run context), the pipeline's session: the step
    environments are built, the inputs staged, SageMaker's jobs executed by the
    local job runner, the artifacts kept beside the report. Without it, a
    registry session (the registry commands): only the repo's local registry,
    restored and, when the command succeeds, saved back."""

    poll_seconds = LOCAL_FOLLOW_SECONDS  # the waiter's, with emulator.HistoryClock

    def __init__(self, config, python: Optional[str] = None, inputs: Sequence[str] = (), *,
                 run: Optional[RunContext] = None, fetch_inputs: bool = False, region: Optional[str] = None,
                 say: Callable[[str], None] = click.echo, allow_nearest: bool = False,
                 interrupt_spot_after: Optional[float] = None):
        self.config = config
        self.interrupt_spot_after = interrupt_spot_after  # --interrupt-spot-after (local/spot_interruption.py)
        self.python = python
        self.allow_nearest = allow_nearest  # --allow-nearest: another major version of a framework may stand in
        self.inputs = tuple(inputs)
        self.run = run
        self.fetch_inputs = fetch_inputs
        self.region = region or (run.region if run else None) or config.aws.region
        self.say = say
        self._session = None
        self.staged: list = []  # the inputs' local data (inputs.LocalInput), once the run's session started

    def __enter__(self) -> Clients:
        self._session = self._run_session() if self.run is not None else self._registry_session()
        return self._session.__enter__()

    def __exit__(self, *exc) -> Optional[bool]:
        session, self._session = self._session, None
        return session.__exit__(*exc)

    @contextlib.contextmanager
    def _run_session(self) -> Iterator[Clients]:
        ctx = self.run
        config = ctx.config
        from . import inputs as local_inputs

        # Every input needs local data (exit 2 before anything starts); --fetch-inputs
        # copies the rest from real S3 now, while the user's own credentials are still
        # the process's: _local_credentials() replaces them before the emulator starts.
        staged, to_fetch = local_inputs.resolve(config, local_inputs.parse_overrides(self.inputs), self.fetch_inputs)
        if to_fetch:
            _import_emulator()  # --local without the emulator installed: exit 2 before fetching
            staged += local_inputs.fetch(Clients(ctx.region, ctx.endpoint_url), to_fetch, config)
        self.staged = list(staged)

        _local_credentials()
        # The emulator starts (moto's import, most of the start-up) while this thread
        # prepares the run's folder and environments, which wait on subprocesses
        # mostly; the sandbox probe, a subprocess too, runs beside both.
        starting = _EmulatorStart()
        probing = _Background(_probe_sandbox, name="mltp-sandbox-probe")
        try:
            from ..housekeeping import fresh_run_folder, gitignore_note, trim_work

            trim_work(config.repo, current=ctx.run_name)  # .mltp/work/ keeps the newest runs only
            fresh_run_folder(config.repo, ctx.run_name)
            note = gitignore_note(config.repo)
            if note:
                self.say(note)
            notes: list = []  # the versions the environments differ in, for the report
            environments = step_environments(config, self.python, self.allow_nearest, notes)
            from .job_env import old_sdk_notice

            sdk_note = old_sdk_notice(environments.values())  # scripts calling AWS need AWS_ENDPOINT_URL honoured
            if sdk_note:
                self.say(sdk_note)
            probing.result()
        except BaseException:
            starting.abandon()
            raise
        emulator, runner_mod, server, endpoint = starting.result()
        clients = Clients(ctx.region, endpoint)
        clients.notes = [f"local environment: {note}" for note in notes]
        clients.local = True
        try:
            runner = runner_mod.LocalJobRunner(clients, config.repo / ".mltp" / "work" / ctx.run_name,
                                               python=self.python, environments=environments,
                                               logs_dir=Path(ctx.report_dir) / "logs", say=self.say,
                                               interrupt_spot_after=self.interrupt_spot_after)
        except BaseException:
            emulator.stop_local_moto(server)
            raise
        emulator.install_sagemaker_backend_hook(runner)
        pythons = sorted({env.python for env in environments.values()})
        self.say(f"local: AWS emulator at {endpoint}; jobs run as local processes with {', '.join(pythons)}")
        if not runner.sandboxed:
            self.say(local_inputs.fallback_notice(config, runner.sandbox_reason))
            from .sandbox import NO_NAMESPACE_ROOT

            self.say(NO_NAMESPACE_ROOT)
        group = config.registry.model_package_group
        restored = False
        registry_lock = None
        try:
            _create_bucket(clients, config.aws.bucket, ctx.region)
            local_inputs.stage(clients, staged, ctx.region, existing=[config.aws.bucket])
            from .. import locks

            # From restore to save the local registry is this run's: another run meanwhile
            # would register the same version number, and one of the two would be lost.
            registry_lock = locks.registry(config.repo, group, self.say)
            _restore_registry(clients, config, self.say)
            restored = True
            _freeze_long_lived()
            yield clients
        finally:
            try:
                _keep_artifacts(clients, ctx)
                _notifications(clients, ctx, self.say)
            except MltpError:
                pass
            runner.stop()
            try:
                if restored:  # never overwrite the store with a half-restored registry
                    from . import registry_store

                    registry_store.save(clients, config.repo, group)
            finally:
                if registry_lock is not None:
                    registry_lock.release()
                emulator.stop_local_moto(server)
                gc.unfreeze()  # what the run kept is collectable again (a process running several runs)

    @contextlib.contextmanager
    def _registry_session(self) -> Iterator[Clients]:
        """Clients of a fresh emulator holding the repo's local registry, saved back
        on the way out: what `mltp models|approve|reject|fetch-model --local` use."""
        config = self.config
        emulator, _ = _import_emulator(runner=False)
        from . import registry_store

        from .. import locks

        _local_credentials()
        server, endpoint = emulator.start_local_moto()
        clients = Clients(self.region, endpoint)
        try:
            # The registry is this session's from restore to save (locks.py).
            with locks.registry(config.repo, config.registry.model_package_group, self.say):
                _create_bucket(clients, config.aws.bucket, clients.region)
                registry_store.restore(clients, config.repo, config.registry.model_package_group,
                                       config.description or "")
                yield clients
                registry_store.save(clients, config.repo, config.registry.model_package_group)
        finally:
            emulator.stop_local_moto(server)


def _import_emulator(runner: bool = True):
    """The emulator (and the job runner), imported with the collector paused;
    moto is the optional `local` extra, so its absence is invalid input."""
    try:
        with _collector_paused():
            from . import emulator
            if runner:
                from . import runner as runner_mod
            else:
                runner_mod = None
    except ImportError as exc:
        raise InvalidInput(f"--local needs the emulator: pip install 'mltp[local]' ({exc})")
    return emulator, runner_mod


class _Background:
    """`target()` in a thread of its own; `result()` joins it and returns what
    it returned, or raises what it raised, in the caller's thread."""

    def __init__(self, target: Callable[[], object], name: str):
        self._target = target
        self._value: object = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._target()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._error = exc

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _probe_sandbox() -> None:
    """Whether jobs get a private /opt/ml here (sandbox.probe, cached for the
    runner), found while the run's start-up does other things."""
    from . import sandbox

    sandbox.probe()


class _EmulatorStart(_Background):
    """The run's emulator, started in a thread: the emulator and the job runner
    imported (with the collector paused), moto's server started, and what every
    run installs in it: the job key's limits (job_access), the Step Functions
    patches. The SageMaker hook needs the runner, so the caller installs it.
    No AWS client is made here: the process's credentials are the emulator's by
    then, but nothing of the agent's must reach it in any case."""

    def __init__(self):
        import importlib.util

        if importlib.util.find_spec("moto") is None:  # said before anything is built
            raise InvalidInput("--local needs the emulator: pip install 'mltp[local]' (no module named 'moto')")
        super().__init__(self._start, name="mltp-emulator-start")

    @staticmethod
    def _start():
        emulator, runner_mod = _import_emulator()
        server, endpoint = emulator.start_local_moto()
        try:
            from . import job_access, job_env

            job_access.install(server, job_env.JOB_KEY_ID)  # jobs reach what their role may on AWS
            emulator.install_sfn_patches(sync_poll_seconds=LOCAL_POLL_SECONDS)
        except BaseException:
            emulator.stop_local_moto(server)
            raise
        return emulator, runner_mod, server, endpoint

    def abandon(self) -> None:
        """The run stops before it needs the emulator: stop it once it has started."""
        try:
            emulator, _, server, _ = self.result()
        except BaseException:  # noqa: BLE001 - the caller is raising its own error already
            return
        emulator.stop_local_moto(server)


def _freeze_long_lived() -> None:
    """What is alive once the emulator is up and the registry restored (moto's
    backends and the service models they loaded, the run's clients) lives as
    long as the run: the collector is pointed away from it (gc.freeze), as after
    the emulator's import. Otherwise the first full collection of the run, which
    the definition's parse at CreateStateMachine sets off, walks all of it again:
    0.2 to 0.4 s of every local run."""
    gc.freeze()


def _local_credentials() -> None:
    """The emulator must never see real credentials, nor this process reach real AWS:
    no profile, token, role or container credentials of the agent's, and its AWS
    config and credentials files not read (job_env gives the jobs the same)."""
    from .job_env import CREDENTIAL_SOURCES, EMULATOR_KEY_ID, EMULATOR_SECRET

    for var in CREDENTIAL_SOURCES:
        os.environ.pop(var, None)
    os.environ["AWS_ACCESS_KEY_ID"] = EMULATOR_KEY_ID
    os.environ["AWS_SECRET_ACCESS_KEY"] = EMULATOR_SECRET
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def _restore_registry(clients, config, say: Callable[[str], None]) -> None:
    from . import registry_store

    count = registry_store.restore(clients, config.repo, config.registry.model_package_group,
                                   config.description or "")
    if count:
        say(f"local: restored {count} version{'s' if count != 1 else ''} of model package group "
            f"{config.registry.model_package_group} from .mltp/registry/{config.registry.model_package_group}/")


def _create_bucket(clients, bucket: str, region: str) -> None:
    """On AWS the bucket exists already (docs/contract.md, 2.2); the fresh emulator has none."""
    kwargs = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    clients.s3.create_bucket(**kwargs)


def claim_run(run: RunContext, explicit: bool, report_dir: Optional[str],
              say: Callable[[str], None] = click.echo):
    """The run name is this run's alone while it lives (locks.py): a second local run
    of the repo with the same --run-name (or MLTP_RUN_NAME) is exit 2, one with a
    default name takes the next free name. Returns the run context to use and the
    lock to release when the run ends."""
    from dataclasses import replace

    from .. import locks

    name, lock = locks.claim_run(run.config.repo, run.run_name, explicit)
    if name != run.run_name:
        say(f"local: another local run of this repo is named {run.run_name}; this one is {name}")
        reports = run.report_dir if report_dir else run.config.repo / ".mltp" / "runs" / name
        run = replace(run, run_name=name, report_dir=reports)
    return run, lock


class LocalRun(NamedTuple):
    """What `local_run` yields: the invocation pointed at the emulator, its
    clients, and how `wait` follows the run there (`run`'s and `resume`'s
    poll_seconds and clock)."""

    inv: object
    clients: Clients
    follow: dict


@contextlib.contextmanager
def local_run(inv, *, explicit_name: bool, report_dir: Optional[str], python: Optional[str] = None,
              inputs: Sequence[str] = (), **options) -> Iterator[LocalRun]:
    """What `mltp run --local` and `mltp resume --local` share once their input
    is validated: the run name claimed (claim_run) for as long as the run lives,
    the emulator session (LocalAws, `options` are its keyword options) entered
    for it, and the invocation pointed at the emulator with the inputs' local
    data (the step cache's key of preprocessing reads them). The waiter follows
    the run there every LOCAL_FOLLOW_SECONDS, and at once after each new history
    event (emulator.HistoryClock)."""
    from dataclasses import replace

    claimed, run_lock = claim_run(inv.run, explicit=explicit_name, report_dir=report_dir)
    try:
        inv = replace(inv, run=claimed, local=True)
        session = LocalAws(inv.config, python, inputs, run=inv.run, **options)
        with session as clients:
            from .emulator import HistoryClock

            pointed = replace(inv.pointed_at(clients.endpoint_url), local_inputs=tuple(session.staged))
            yield LocalRun(pointed, clients, {"poll_seconds": session.poll_seconds, "clock": HistoryClock()})
    finally:
        run_lock.release()


def _notifications(clients, ctx, say: Callable[[str], None]) -> None:
    """With `notify`, what the run would have sent on AWS: notifications.json in
    the report folder, and one line each."""
    if getattr(ctx.config, "notify", None) is None:
        return
    from .. import notifications

    sent = notifications.local_notifications(ctx.config, Path(ctx.report_dir), ctx.region, clients.account_id())
    for line in notifications.lines(sent) or ["notify: nothing would have been sent for this run"]:
        say(line)


def _keep_artifacts(clients, ctx) -> None:
    """The model and evaluation.json land beside the report (docs/contract.md, 8.3), since
    the emulator's S3 vanishes with it."""
    from .. import naming
    from .objects import get_file
    from .runner import split_s3

    target = Path(ctx.report_dir)
    artifacts = naming.run_artifacts(ctx.config, ctx.state_machine, ctx.run_name)
    for uri, name in ((artifacts.model, "model.tar.gz"), (artifacts.evaluation, "evaluation.json")):
        bucket, key = split_s3(uri)
        try:
            target.mkdir(parents=True, exist_ok=True)
            get_file(clients.s3, bucket, key, str(target / name))
        except Exception:  # not produced: the run stopped before that step
            continue
    work = ctx.config.repo / ".mltp" / "work" / ctx.run_name
    from .. import resume, runs

    # What `mltp resume --local` takes from this run, should it have failed: only a
    # run its report says failed, timed out or stopped can be resumed (resume.local_source).
    if _report_status(target) in resume.LOCAL_FAILED + (None,):
        try:
            resume.keep_local(clients, work, runs.execution_arn(ctx, clients))
        except Exception:  # noqa: BLE001  (keeping it is a convenience: never the run's result)
            pass
    if work.is_dir():
        logs = target / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for log in work.glob("*.log"):
            shutil.copyfile(log, logs / log.name)


def _report_status(report_dir: Path) -> Optional[str]:
    """The run's status as its report.json says (None: no report was written)."""
    import json

    try:
        status = json.loads((report_dir / "report.json").read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return None
    return status if isinstance(status, str) else None
