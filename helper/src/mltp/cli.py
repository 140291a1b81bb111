"""The `mltp` command. Commands only parse options and delegate to
`mltp.commands.<verb>` (mltp/verbs.py is the table); this module is the edge
that chooses the environment: it makes the one Invocation (repo, loaded config,
run context, output) and the one set of AWS clients, real AWS or the local
emulator (`mltp.local.session.LocalAws`, which nothing below imports), hands
them down, and prints what the verbs return. It also turns errors into the
contract's exit codes (docs/contract.md, 4.1).

Every option can also come from the environment (MLTP_CONFIG, MLTP_RUN_NAME,
...): that is how the Jenkins step passes values without quoting them into
shell text.
"""

import contextlib
import gc
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

import click

from . import __version__
from .errors import InvalidInput, MltpError
from .redaction import redact
from .verbs import SHORT_VERBS

# boto3 warns on every start under Python 3.9 that its support ends; agents with
# the OS's 3.9 (Amazon Linux 2023) would see it before every verb's output. The
# pinned boto3 works on 3.9; docs/jenkins.md's agent requirements say what the end means.
warnings.filterwarnings("ignore", message="Boto3 will no longer support Python")

REPO = click.argument("repo", default=".", type=click.Path(file_okay=False, path_type=Path))


def _config_option(f: Callable) -> Callable:
    return click.option("--config", "config", envvar="MLTP_CONFIG", metavar="FILE",
                        help="Config file, relative to REPO or absolute. Default: REPO/config.yaml.")(f)


def _aws_options(f: Callable) -> Callable:
    f = click.option("--run-name", envvar="MLTP_RUN_NAME", metavar="NAME",
                     help="Run (execution) name. Default: from Jenkins' BUILD_TAG, else a timestamp.")(f)
    f = click.option("--region", envvar="MLTP_REGION", help="AWS region. Default: aws.region of the config.")(f)
    f = click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", metavar="URL",
                     help="Send AWS calls to this endpoint (an emulator).")(f)
    return f


def _report_option(f: Callable) -> Callable:
    return click.option("--report-dir", envvar="MLTP_REPORT_DIR", metavar="DIR",
                        help="Where report.json, report.md, junit.xml and summary.txt go. Default: REPO/.mltp/runs/<run name>/.")(f)


def _timeout_option(f: Callable) -> Callable:
    return click.option("--timeout", "timeout", envvar="MLTP_TIMEOUT", type=click.FloatRange(min=0, min_open=True),
                        metavar="MINUTES", help="Stop waiting (and stop the run) after this many minutes.")(f)


def _local_option(f: Callable) -> Callable:
    return click.option("--local", is_flag=True, envvar="MLTP_LOCAL",
                        help="Run against the embedded AWS emulator with local processes; no AWS account needed.")(f)


def _no_cache_option(f: Callable) -> Callable:
    return click.option("--no-cache", "no_cache", is_flag=True, envvar="MLTP_NO_CACHE",
                        help="Run every step, even those the step cache could reuse (steps.<step>.cache).")(f)


def _write_error_file(line: str) -> None:
    """The Jenkins step turns this one line into `error "[mlTrainingPipeline] ..."`."""
    target = os.environ.get("MLTP_ERROR_FILE")
    if not target:
        return
    try:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(line.strip() + "\n", encoding="utf-8")
    except OSError:
        pass


def _one_line(exc: MltpError, limit: int = 600) -> str:
    """The reason as one line (a build's error line): the first detail for input
    problems, else the message, with any log lines it carries joined by ' | '."""
    if exc.details:
        more = len(exc.details) - 1
        text = exc.details[0] + (f" (and {more} more problem{'s' if more != 1 else ''})" if more else "")
    else:
        text = exc.message
    text = " | ".join(part.strip() for part in text.splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sigterm(signum, frame):  # pragma: no cover - exercised through subprocess tests
    raise KeyboardInterrupt("SIGTERM")


# Verbs that end within seconds (SHORT_VERBS, from the verb table). Python's
# cyclic garbage collector runs every few hundred new objects, and a verb's
# imports and botocore's service models create hundreds of thousands that live
# until the process ends: with the collector off, `validate`, `publish` and
# `start` each start some 50 ms sooner. Reference counting still frees
# everything else; the little cyclic garbage a short verb makes goes with the
# process. The long verbs (wait, run, logs, ...) keep it on.


class _Group(click.Group):
    """Maps errors to exit codes: expected failures print plain lines, never a traceback."""

    def __call__(self, *args, **kwargs):
        """The process's entry (the console script, `python -m mltp.cli`); tests
        call main() directly and keep their collector. On the way out the
        collector is pointed away from everything alive (gc.freeze): the
        interpreter's final collections would otherwise walk it all, some 0.7 s
        after a local run (moto's backends) and a little after every verb."""
        gc.disable()
        try:
            return super().__call__(*args, **kwargs)
        finally:
            gc.freeze()

    def resolve_command(self, ctx: click.Context, args):
        name, command, rest = super().resolve_command(ctx, args)
        if name not in SHORT_VERBS:
            gc.enable()
        return name, command, rest

    def invoke(self, ctx: click.Context):
        signal.signal(signal.SIGTERM, _sigterm)
        try:
            return super().invoke(ctx)
        except MltpError as exc:
            for line in exc.lines():
                click.echo(redact(f"mltp: {line}" if line is exc.message else f"  {line}"), err=True)
            _write_error_file(redact(_one_line(exc)))
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            _write_error_file("interrupted")
            click.echo("mltp: interrupted", err=True)
            sys.exit(4)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # a bug: say so, with the traceback for the report
            click.echo(redact(traceback.format_exc()).rstrip("\n"), err=True)
            _write_error_file(redact(f"internal error: {type(exc).__name__}: {exc}"))
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mltp")
def main() -> None:
    """mltp: a model repo to a trained, gated and registered SageMaker model.

    Each command takes the model repo (default: the current directory).
    Exit codes: 0 passed, 2 invalid input, 3 metric gate failed,
    4 run failed, 5 AWS refused or unreachable, 1 a bug.
    """


# --------------------------------------------------------------------------- the environment, chosen here


def _invocation(repo: Path, config: Optional[str], run_name: Optional[str] = None, region: Optional[str] = None,
                endpoint_url: Optional[str] = None, report_dir: Optional[str] = None, check: bool = False):
    """The verb's one Invocation: the config loaded once (exit 2 on a bad one),
    with `check` the repo checked (the verbs that ship it), the run context made once."""
    from . import invocation

    return invocation.load(repo, config, run_name=run_name, region=region, endpoint_url=endpoint_url,
                           report_dir=report_dir, echo=click.echo, check=check)


def _aws(inv):
    """Real AWS (or the endpoint given): one set of clients for the whole verb."""
    from .aws import Clients

    return Clients(inv.run.region, inv.run.endpoint_url)


def _local_aws():
    """The local emulator's session class; its absence (an install without the
    local support) is invalid input, said before anything starts."""
    try:
        from .local.session import LocalAws
    except ImportError as exc:
        raise InvalidInput(f"--local needs the local run support, which this installation lacks ({exc})")
    return LocalAws


def _local_run():
    """`mltp.local.session.local_run`, what `run --local` and `resume --local` enter;
    as for _local_aws, an installation without the local support is invalid input."""
    try:
        from .local.session import local_run
    except ImportError as exc:
        raise InvalidInput(f"--local needs the local run support, which this installation lacks ({exc})")
    return local_run


@contextlib.contextmanager
def _registry(repo: Path, config: Optional[str], local: bool, region: Optional[str], endpoint_url: Optional[str],
              group: Optional[str]):
    """The group and clients for the registry commands: from the repo's config,
    or from --group and --region alone (a deployment job without the model repo).
    With `local`, an emulator holding the repo's local registry, saved back when
    the command ends."""
    from . import config as config_mod
    from .commands import registry as registry_cmd

    cfg = None if group else config_mod.load(repo, config)
    where = registry_cmd.target(repo, cfg, local=local, region=region, group=group)
    if local:
        with _local_aws()(cfg, region=where.region) as clients:
            yield where, clients
        return
    from .aws import Clients

    yield where, Clients(where.region, endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None)


def _echo_all(lines) -> None:
    for line in lines:
        click.echo(line)


# --------------------------------------------------------------------------- verbs without AWS


@main.command()
@REPO
@_config_option
@click.option("--info-file", envvar="MLTP_INFO_FILE", metavar="FILE",
              help="Also write key=value lines (name, schedule, state_machine, register) for the Jenkins step.")
def validate(repo: Path, config: Optional[str], info_file: Optional[str]) -> None:
    """Check config.yaml and the model repo; no AWS call, no network."""
    from .commands.validate import validate

    click.echo(validate(_invocation(repo, config, check=True), info_file=info_file).summary())


@main.command()
@REPO
@_config_option
def render(repo: Path, config: Optional[str]) -> None:
    """Print the state machine definition (deterministic JSON)."""
    from . import config as config_mod
    from .commands.render import render

    click.echo(render(config_mod.load(repo, config)), nl=False)


@main.command()
def schema() -> None:
    """Print the JSON Schema of config.yaml (for editors)."""
    from .commands.schema import schema

    click.echo(schema())


@main.command("iam-policy")
@REPO
@_config_option
@click.option("--role", required=True, type=click.Choice(["jenkins", "states", "sagemaker", "branch-sagemaker", "trigger"]),
              help="Whose policy: the Jenkins identity, states_role_arn, sagemaker_role_arn, "
                   "branch_sagemaker_role_arn or the retraining trigger.")
@click.option("--feature", "features", multiple=True, type=click.Choice(["approval", "fetch", "trigger", "logs", "prune", "resume"]),
              help="Also allow a feature used outside config.yaml (repeatable). KMS and inputs come from config.yaml.")
@click.option("--jenkins-arn", metavar="ARN",
              help="With --role jenkins: the Jenkins role or user itself, so preflight may check what it may pass.")
@click.option("--trust", is_flag=True, help="Print the role's trust policy instead of its permissions.")
@click.option("--format", "fmt", type=click.Choice(["json", "cloudformation", "terraform"]), default="json",
              show_default=True, help="IAM JSON, or a CloudFormation / Terraform role with trust and permissions.")
def iam_policy(repo: Path, config: Optional[str], role: str, features, jenkins_arn: Optional[str], trust: bool,
               fmt: str) -> None:
    """Print the least-privilege IAM policy of a role, derived from config.yaml; no AWS call."""
    from . import config as config_mod
    from .commands.iam_policy import iam_policy

    text, notes = iam_policy(config_mod.load(repo, config), role, features, trust, fmt, jenkins_arn)
    for note in notes:
        click.echo(note, err=True)
    click.echo(text, nl=False)


def _preflight_option(f: Callable) -> Callable:
    f = click.option("--preflight", "preflight_mode", type=click.Choice(["auto", "always", "never"]), default="auto",
                     envvar="MLTP_PREFLIGHT", show_default=True,
                     help="Run `mltp preflight` first: auto skips it where it passed for this account, identity, "
                          "config and roles within MLTP_PREFLIGHT_MAX_AGE hours (24); always runs it.")(f)
    return click.option("--no-preflight", is_flag=True, envvar="MLTP_NO_PREFLIGHT",
                        help="Do not run `mltp preflight` first (--preflight never).")(f)


def _preflight_mode(no_preflight: bool, mode: str) -> str:
    return "never" if no_preflight else mode


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="Model name (3 to 40 of a-z, 0-9, single hyphens). Default: from DIRECTORY's name.")
@click.option("--framework", type=click.Choice(["sklearn", "xgboost"]), default="sklearn", show_default=True,
              help="The SageMaker framework container the scripts are written for.")
@click.option("--region", help="AWS region. Default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1.")
@click.option("--bucket", help="S3 bucket for code and artifacts. Default: <name>-mltp.")
def init(directory: Path, name: Optional[str], framework: str, region: Optional[str], bucket: Optional[str]) -> None:
    """Start a model repo in DIRECTORY that `mltp run DIRECTORY --local` passes as it is."""
    from .commands.init import init

    for path in init(directory, name=name, framework=framework, region=region, bucket=bucket):
        click.echo(f"wrote {path}")
    click.echo(f"next: mltp run {directory} --local")


# --------------------------------------------------------------------------- the AWS verbs


@main.command()
@REPO
@_config_option
@_aws_options
def preflight(repo: Path, config: Optional[str], **aws) -> None:
    """Read-only checks of the AWS account: bucket, roles, PassRole, quotas, KMS key, registry."""
    from .commands.preflight import preflight

    inv = _invocation(repo, config, **aws)
    preflight(inv, _aws(inv))


@main.command()
@REPO
@_config_option
@_aws_options
@_preflight_option
def sync(repo: Path, config: Optional[str], no_preflight: bool, preflight_mode: str, **aws) -> None:
    """Upload the code bundle to S3 (nothing when that content is there already); runs preflight first."""
    from .commands.sync import sync

    inv = _invocation(repo, config, check=True, **aws)
    click.echo(sync(inv, _aws(inv), preflight=_preflight_mode(no_preflight, preflight_mode)).summary())


@main.command()
@REPO
@_config_option
@_aws_options
def deploy(repo: Path, config: Optional[str], **aws) -> None:
    """Create or update the state machine; prints created, updated or unchanged."""
    from .commands.deploy import deploy

    inv = _invocation(repo, config, check=True, **aws)
    click.echo(deploy(inv, _aws(inv)).summary())


@main.command()
@REPO
@_config_option
@_aws_options
@_preflight_option
def publish(repo: Path, config: Optional[str], no_preflight: bool, preflight_mode: str, **aws) -> None:
    """sync, then deploy, in one process (the Jenkins step's Deploy stage); runs preflight first."""
    from .commands.publish import publish

    inv = _invocation(repo, config, check=True, **aws)
    click.echo(publish(inv, _aws(inv), preflight=_preflight_mode(no_preflight, preflight_mode)).summary())


@main.command()
@REPO
@_config_option
@_aws_options
@_no_cache_option
def start(repo: Path, config: Optional[str], no_cache: bool, **aws) -> None:
    """Start the run (or re-attach to the run of that name)."""
    from dataclasses import replace

    from .commands.start import start

    inv = replace(_invocation(repo, config, check=True, **aws), no_cache=no_cache)
    _echo_all(start(inv, _aws(inv)).lines())


@main.command()
@REPO
@_config_option
@_aws_options
@_local_option
@_no_cache_option
def plan(repo: Path, config: Optional[str], local: bool, no_cache: bool, run_name: Optional[str],
         region: Optional[str], endpoint_url: Optional[str]) -> None:
    """Say, before spending anything, which steps a run would run and which it would take from the step cache."""
    from dataclasses import replace

    from .commands.plan import plan

    inv = _invocation(repo, config, run_name=run_name, region=region, endpoint_url=endpoint_url, check=True)
    inv = replace(inv, no_cache=no_cache, local=local)
    if local:
        inv = replace(inv, local_inputs=tuple(_local_input_data(inv.config)))
    _echo_all(plan(inv, None if local else _aws(inv)))


def _local_input_data(cfg):
    """The inputs' local data a local run would be given now: their `local`
    keys, and data fetched before (local.inputs.copy_folder); an input with
    neither is left out (its key then differs from any run's)."""
    from .local import inputs as local_inputs

    found, to_fetch = local_inputs.resolve(cfg, {}, fetch=True)
    for item in to_fetch:
        kept = local_inputs.copy_folder(cfg, item)
        if kept.is_dir():
            found.append(local_inputs.LocalInput(item, kept.resolve(), "fetched before"))
    return found


@main.command()
@REPO
@_config_option
@_aws_options
@_report_option
@_timeout_option
def wait(repo: Path, config: Optional[str], timeout: Optional[float], **aws) -> None:
    """Follow the run to its end, write the report; the exit code tells the outcome."""
    from .commands.wait import wait

    inv = _invocation(repo, config, **aws)
    wait(inv, _aws(inv), timeout=timeout)


@main.command()
@REPO
@_config_option
@_aws_options
def stop(repo: Path, config: Optional[str], **aws) -> None:
    """Stop the run (used when a build is aborted)."""
    from .commands.stop import stop

    inv = _invocation(repo, config, **aws)
    click.echo(stop(inv, _aws(inv)).summary())


@main.command()
@REPO
@_config_option
@_aws_options
@_report_option
@_timeout_option
@_local_option
@_preflight_option
@click.option("--no-wait", is_flag=True, help="Return once the run has started.")
@click.option("--python", "python", envvar="MLTP_PYTHON", metavar="PATH",
              help="With --local: the Python that runs the scripts. Default: a cached virtualenv per "
                   "framework that mirrors its SageMaker container.")
@click.option("--input", "inputs", multiple=True, metavar="NAME=PATH",
              help="With --local: serve this file or folder as preprocessing input NAME (overrides its `local`).")
@click.option("--fetch-inputs", is_flag=True, envvar="MLTP_FETCH_INPUTS",
              help="With --local: copy inputs that have no local data from S3 first, with your AWS credentials.")
@click.option("--allow-nearest", is_flag=True, envvar="MLTP_ALLOW_NEAREST",
              help="With --local: where the framework's own package has no build of the container's major version "
                   "for this Python, use the nearest version that installs instead of stopping (exit 2).")
@_no_cache_option
@click.option("--interrupt-spot-after", "interrupt_spot_after", type=click.FloatRange(min=0, min_open=True),
              metavar="SECONDS", envvar="MLTP_INTERRUPT_SPOT_AFTER",
              help="With --local and steps.training.spot: stop the training job once after SECONDS, as a spot "
                   "interruption (SIGTERM, then SIGKILL after 120 s), and start it again with its checkpoints.")
def run(repo: Path, config: Optional[str], timeout: Optional[float], local: bool, no_preflight: bool,
        preflight_mode: str, no_wait: bool,
        python: Optional[str], inputs: Sequence[str], fetch_inputs: bool, allow_nearest: bool,
        run_name: Optional[str], region: Optional[str], endpoint_url: Optional[str],
        report_dir: Optional[str], no_cache: bool = False, interrupt_spot_after: Optional[float] = None) -> None:
    """validate, sync, deploy, start and wait, in order."""
    from dataclasses import replace

    from .commands.run import run
    from .commands.validate import validate

    if local:
        local_run = _local_run()
        if no_wait:
            raise InvalidInput("--no-wait cannot be used with --local: the emulator lives only as long as mltp runs")
        # Bad input fails fast, before anything starts; --endpoint-url is the emulator's.
        inv = _invocation(repo, config, run_name=run_name, region=region, report_dir=report_dir, check=True)
        checked = validate(inv)
        if interrupt_spot_after is not None:
            from .local.spot_interruption import check_option

            check_option(inv.config)
        with local_run(replace(inv, no_cache=no_cache), explicit_name=run_name is not None, report_dir=report_dir,
                       python=python, inputs=inputs, fetch_inputs=fetch_inputs, allow_nearest=allow_nearest,
                       interrupt_spot_after=interrupt_spot_after) as (inv, clients, follow):
            # The same validated repo, now pointed at the emulator.
            run(inv, clients, replace(checked, context=inv.run), timeout=timeout, preflight="never", **follow)
        return
    if inputs or fetch_inputs:
        raise InvalidInput("--input and --fetch-inputs apply to local runs only: add --local")
    if interrupt_spot_after is not None:
        raise InvalidInput("--interrupt-spot-after applies to local runs only (on AWS, SageMaker interrupts "
                           "spot jobs itself): add --local")
    inv = _invocation(repo, config, run_name=run_name, region=region, endpoint_url=endpoint_url,
                      report_dir=report_dir, check=True)
    inv = replace(inv, no_cache=no_cache)
    checked = validate(inv)
    click.echo(checked.summary())
    run(inv, _aws(inv), checked, timeout=timeout, no_wait=no_wait, preflight=_preflight_mode(no_preflight, preflight_mode))


@main.command()
@REPO
@_config_option
@_aws_options
@_report_option
@_timeout_option
@_local_option
@_preflight_option
@click.option("--run", "source_run", envvar="MLTP_RESUME_RUN", metavar="NAME",
              help="The failed run to go on from. Default: this branch's newest failed, timed-out or stopped run.")
@click.option("--python", "python", envvar="MLTP_PYTHON", metavar="PATH",
              help="With --local: the Python that runs the scripts (as `run --local`).")
@click.option("--input", "inputs", multiple=True, metavar="NAME=PATH",
              help="With --local: serve this file or folder as preprocessing input NAME (overrides its `local`).")
def resume(repo: Path, config: Optional[str], timeout: Optional[float], local: bool, no_preflight: bool,
           preflight_mode: str, source_run: Optional[str], python: Optional[str], inputs: Sequence[str], run_name: Optional[str],
           region: Optional[str], endpoint_url: Optional[str], report_dir: Optional[str]) -> None:
    """Go on from a failed run: its succeeded steps are taken from it, the rest run (a redrive on AWS when nothing changed)."""
    from dataclasses import replace

    from .commands.resume import resume
    from .commands.validate import validate

    if local:
        local_run = _local_run()
        inv = _invocation(repo, config, run_name=run_name, region=region, report_dir=report_dir, check=True)
        checked = validate(inv)
        from .resume import local_source

        local_source(inv.repo, inv.run.state_machine, source_run)  # nothing to resume: exit 2 before anything starts
        with local_run(inv, explicit_name=run_name is not None, report_dir=report_dir, python=python,
                       inputs=inputs) as (inv, clients, follow):
            resume(inv, clients, replace(checked, context=inv.run), source_run=source_run, timeout=timeout,
                   preflight="never", **follow)
        return
    if inputs:
        raise InvalidInput("--input applies to local runs only: add --local")
    inv = _invocation(repo, config, run_name=run_name, region=region, endpoint_url=endpoint_url,
                      report_dir=report_dir, check=True)
    checked = validate(inv)
    click.echo(checked.summary())
    resume(inv, _aws(inv), checked, source_run=source_run, timeout=timeout,
           preflight=_preflight_mode(no_preflight, preflight_mode))


# --------------------------------------------------------------------------- trigger (retraining on new data)


@main.group()
def trigger() -> None:
    """Retraining when new data lands: an S3 notification starts a default-branch
    run (Lambda), on the code of the last successful default-branch run."""


@trigger.command()
@REPO
@_config_option
@_aws_options
@click.option("--role-arn", envvar="MLTP_TRIGGER_ROLE_ARN", metavar="ARN",
              help="Use this execution role for the function (see `mltp trigger policy`) "
                   "instead of creating mltp-trigger-<name>.")
def install(repo: Path, config: Optional[str], role_arn: Optional[str], **aws) -> None:
    """Create or update the trigger (default branch only); prints created, updated or unchanged."""
    from .commands.trigger import install

    inv = _invocation(repo, config, **aws)
    click.echo(install(inv, _aws(inv), role_arn=role_arn).summary())


@trigger.command()
@REPO
@_config_option
@_aws_options
def remove(repo: Path, config: Optional[str], **aws) -> None:
    """Remove the trigger; other notifications on the buckets stay."""
    from .commands.trigger import remove

    inv = _invocation(repo, config, **aws)
    click.echo(remove(inv, _aws(inv)).summary())


@trigger.command()
@REPO
@_config_option
@_aws_options
def status(repo: Path, config: Optional[str], **aws) -> None:
    """Show the trigger, the code a retrain would run, and pending data."""
    from .commands.trigger import status

    inv = _invocation(repo, config, **aws)
    _echo_all(status(inv, _aws(inv)))


@trigger.command()
@REPO
@_config_option
@_aws_options
def policy(repo: Path, config: Optional[str], **aws) -> None:
    """Print the IAM policy the trigger function's role needs."""
    from .commands.trigger import policy

    inv = _invocation(repo, config, **aws)
    click.echo(policy(inv, _aws(inv)))


# --------------------------------------------------------------------------- logs, housekeeping


@main.command()
@REPO
@_config_option
@click.option("--run", "run", envvar="MLTP_RUN_NAME", metavar="NAME", help="The run. Default: the newest run.")
@click.option("--region", envvar="MLTP_REGION", help="AWS region. Default: aws.region of the config.")
@click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", metavar="URL", help="Send AWS calls to this endpoint (an emulator).")
@click.option("--follow", "-f", "follow", is_flag=True, help="Keep printing until the run ends.")
@click.option("--export", "export", is_flag=False, flag_value="", default=None, metavar="[S3_URI]",
              help="Export the run's logs to S3 (CreateExportTask) and print where they are. "
                   "Default place: <prefix>/<name>/runs/<run>/logs/ in the config's bucket.")
@click.option("--local", is_flag=True, help="A local run's logs, from the files it keeps under REPO/.mltp/runs/.")
def logs(repo: Path, config: Optional[str], run: Optional[str], region: Optional[str], endpoint_url: Optional[str],
         follow: bool, export: Optional[str], local: bool) -> None:
    """Print a run's Step Functions events and SageMaker job logs, merged by time and labelled by step."""
    from .commands.logs import logs, logs_local

    if local:
        logs_local(repo, run, click.echo)
        return
    inv = _invocation(repo, config, region=region, endpoint_url=endpoint_url)
    logs(inv, _aws(inv), run, follow=follow, export=export)


@main.command()
@REPO
def clean(repo: Path) -> None:
    """Empty REPO/.mltp/work/, the job folders of local runs (reports stay)."""
    from .commands.housekeeping import clean

    click.echo(clean(repo))


@main.command()
@REPO
@_config_option
@_aws_options
@click.option("--older-than", "older_than", envvar="MLTP_OLDER_THAN", default="30d", show_default=True, metavar="AGE",
              help="Unused for this long: 30d, 12h, 2w.")
@click.option("--yes", is_flag=True, envvar="MLTP_YES", help="Delete what is listed (without it, only list).")
def prune(repo: Path, config: Optional[str], older_than: str, yes: bool, **aws) -> None:
    """List branch state machines with no recent execution (never the default
    branch's) and code prefixes no kept run references; delete them with --yes."""
    from .commands.housekeeping import age_of, prune

    age_of(older_than)
    inv = _invocation(repo, config, **aws)
    prune(inv, _aws(inv), older_than=older_than, yes=yes)


# --------------------------------------------------------------------------- after the gate: models, approve, fetch


def _registry_options(f: Callable) -> Callable:
    """REPO, --config, --group, --region, --endpoint-url and --local: what the registry commands share."""
    f = _local_option(f)
    f = click.option("--group", "group", envvar="MLTP_MODEL_PACKAGE_GROUP", metavar="NAME",
                     help="Act on this model package group (needs --region); no config is read.")(f)
    f = click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", metavar="URL",
                     help="Send AWS calls to this endpoint (an emulator).")(f)
    f = click.option("--region", envvar="MLTP_REGION", help="AWS region. Default: aws.region of the config.")(f)
    f = _config_option(f)
    return REPO(f)


@main.command()
@_registry_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Show at most this many versions.")
def models(repo: Path, config: Optional[str], as_json: bool, limit: int, **where) -> None:
    """The versions of the model package group, newest first: status, gate metrics, commit, build, decision."""
    from .commands.registry import models, models_lines

    with _registry(repo, config, **where) as (target, clients):
        versions = models(target, clients, limit=limit)
    _echo_all(models_lines(target.group, versions, as_json=as_json))


def _decision_options(f: Callable) -> Callable:
    for decorate in reversed((
        _registry_options,
        click.option("--version", "version", envvar="MLTP_MODEL_VERSION", metavar="N",
                     help="The version: N, group/N or its model package ARN."),
        click.option("--run", "run", envvar="MLTP_MODEL_RUN", metavar="NAME", help="The version registered by this run."),
        click.option("--note", envvar="MLTP_APPROVAL_NOTE", metavar="TEXT", help="Why (kept in ApprovalDescription)."),
        click.option("--by", envvar="MLTP_APPROVER", metavar="ID",
                     help="Who decides. Default: Jenkins' BUILD_USER_ID, else the OS user."),
    )):
        f = decorate(f)
    return f


@main.command()
@_decision_options
def approve(repo: Path, config: Optional[str], version: Optional[str], run: Optional[str], note: Optional[str],
            by: Optional[str], **where) -> None:
    """Set a version's status to Approved (UpdateModelPackage), recording who, when, the build and the note."""
    from .commands.registry import approve, check_choice

    check_choice(version, run)
    with _registry(repo, config, **where) as (target, clients):
        result = approve(target, clients, version=version, run=run, note=note, by=by)
    click.echo(result.summary())


@main.command()
@_decision_options
def reject(repo: Path, config: Optional[str], version: Optional[str], run: Optional[str], note: Optional[str],
           by: Optional[str], **where) -> None:
    """Set a version's status to Rejected (UpdateModelPackage), recording who, when, the build and the note."""
    from .commands.registry import check_choice, reject

    check_choice(version, run)
    with _registry(repo, config, **where) as (target, clients):
        result = reject(target, clients, version=version, run=run, note=note, by=by)
    click.echo(result.summary())


@main.command(name="fetch-model")
@_registry_options
@click.option("--version", "version", envvar="MLTP_MODEL_VERSION", metavar="N",
              help="The version: N, group/N or an ARN. Default: the newest Approved version.")
@click.option("--to", "to", envvar="MLTP_FETCH_DIR", metavar="DIR", help="Where model.tar.gz and model-package.json go. Default: REPO/.mltp/model.")
@click.option("--info-file", envvar="MLTP_INFO_FILE", metavar="FILE",
              help="Also write key=value lines (arn, group, version, status, model, sha256) for the Jenkins step.")
def fetch_model(repo: Path, config: Optional[str], version: Optional[str], to: Optional[str],
                info_file: Optional[str], **where) -> None:
    """Download a version's model.tar.gz, verified against the SHA-256 recorded at registration."""
    from .commands.registry import fetch_lines, fetch_model, write_fetch_info

    with _registry(repo, config, **where) as (target, clients):
        result = fetch_model(target, clients, version=version, to=to)
    _echo_all(fetch_lines(result))
    if info_file:
        write_fetch_info(result, info_file)


if __name__ == "__main__":  # pragma: no cover
    main()
