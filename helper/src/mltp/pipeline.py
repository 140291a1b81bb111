"""The verbs of the mltp command (docs/contract.md, 9.1), composed from the modules that do the work.

`run` is validate -> sync -> deploy -> start -> wait; the local run calls the
very same functions against the embedded emulator, so there is one path.
"""

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import click

from . import config as config_mod
from . import repo as repo_mod
from .config import Config, display
from .context import RunContext, make_context
from .errors import InvalidInput, MltpError

Echo = Callable[[str], None]


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
        return (
            f"ok: {display(cfg.path)} valid; {len(self.files)} files to ship ({size / 1024:.1f} KiB){skipped}, "
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
                ("retrain", "true" if self.config.retrain else "false"),
            )
        )


def validate(repo: Path, config: Optional[str], info_file: Optional[str] = None, **options) -> Validated:
    """Config and repo checks; every problem at once; raises InvalidInput (exit 2)."""
    cfg = config_mod.load(repo, config)
    skipped: List[str] = []
    files, problems = repo_mod.check(cfg, skipped)
    if problems:
        where = "" if display(repo) == "." else f" {display(repo)}"
        raise InvalidInput(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the model repo{where}", problems)
    ctx = make_context(cfg, **_context_options(options))
    result = Validated(cfg, files, ctx, tuple(skipped))
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


def iam_policy(repo: Path, config: Optional[str], role: str, features=(), trust: bool = False, fmt: str = "json",
               jenkins_arn: Optional[str] = None):
    """(text, notes) of `mltp iam-policy`: the role's policy from the config alone."""
    import re

    from . import policies, policy_formats

    cfg = config_mod.load(repo, config)
    if jenkins_arn and not re.match(r"^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[\w+=,.@/-]+$", jenkins_arn):
        raise InvalidInput(f"--jenkins-arn {jenkins_arn}: must be an IAM role or user ARN such as "
                           "arn:aws:iam::123456789012:role/jenkins-agent")
    if trust:
        policy = policies.without_permissions(cfg, role)
    else:
        policy = policies.policy(cfg, role, features, jenkins_arn if role == "jenkins" else None)
    return policy_formats.render(policy, policies.trust(cfg, role), fmt, trust_only=trust)


# --------------------------------------------------------------------------- sync, deploy, start, stop


def _clients(ctx: RunContext):
    from .aws import Clients

    return Clients(ctx.region, ctx.endpoint_url)


def preflight(repo: Path, config: Optional[str], **options):
    """Read-only checks of the account (bucket, roles, quotas, key, registry); exit 5 when one fails."""
    return preflight_checked(make_context(config_mod.load(repo, config), **_context_options(options)))


# Preflight asks once and moves on: an emulator without an API answers 500, which
# the default retries would repeat for a minute.
PREFLIGHT_ATTEMPTS = 2


def preflight_checked(ctx: RunContext):
    from . import preflight as preflight_mod
    from .aws import Clients
    from .errors import AwsRefused

    checks = preflight_mod.preflight(ctx.config, Clients(ctx.region, ctx.endpoint_url, max_attempts=PREFLIGHT_ATTEMPTS),
                                     branch_build=not ctx.register)
    for check in checks:
        click.echo(f"preflight: {check.line()}")
    failed = [check.text for check in checks if check.status == preflight_mod.FAILED]
    if failed:
        raise AwsRefused(f"preflight: {len(failed)} check{'s' if len(failed) != 1 else ''} failed "
                         "(skip with --no-preflight)", failed)
    return checks


def sync(repo: Path, config: Optional[str], no_preflight: bool = False, **options):
    """Upload the code bundle unless its content-addressed prefix is complete.
    The Deploy stage starts here, so this runs the preflight first unless told not to."""
    checked = validate(repo, config, **options)
    if not no_preflight:
        preflight_checked(checked.context)
    return sync_checked(checked)


def sync_checked(checked: Validated, bundle=None):
    from . import sync as sync_mod

    result = sync_mod.sync(checked.config, _clients(checked.context), checked.files, bundle=bundle,
                           state_machine=checked.context.state_machine)
    click.echo(result.summary())
    return result


def deploy(repo: Path, config: Optional[str], **options):
    """Create or update the state machine; the line starts with created, updated or unchanged."""
    return deploy_checked(validate(repo, config, **options))


def deploy_checked(checked: Validated):
    from . import deploy as deploy_mod

    result = deploy_mod.deploy(checked.context, _clients(checked.context))
    click.echo(result.summary())
    return result


def publish(repo: Path, config: Optional[str], no_preflight: bool = False, **options):
    """sync then deploy in one process: the Jenkins step's Deploy stage. The repo is
    validated and hashed once, and the helper starts once (about half the time of
    two processes); a failure still names the part that failed (sync: / deploy:)."""
    checked = validate(repo, config, **options)
    if not no_preflight:
        preflight_checked(checked.context)
    sync_checked(checked)
    return deploy_checked(checked)


def start(repo: Path, config: Optional[str], **options):
    """Start the run on the current files' code, or re-attach to the run of that name."""
    return start_checked(validate(repo, config, **options))


def start_checked(checked: Validated, bundle=None):
    """Verifies the S3 prefix against the files (`bundle`: already hashed) before starting."""
    from . import bundle as bundle_mod
    from . import runs

    clients = _clients(checked.context)
    champion = find_champion(checked.config, clients)
    result = runs.start(checked.context, clients, bundle or bundle_mod.make(checked.files), champion=champion)
    click.echo(result.summary())
    if not result.attached:
        click.echo(champion_line(champion, checked.config))
    return result


def find_champion(cfg: Config, clients) -> dict:
    """The execution input's Champion (registry.champion_input). When the
    registry cannot be read, a run without champion rules goes on (the
    comparison says why it is missing); one with champion rules stops (exit 5)."""
    from . import registry
    from .errors import AwsRefused

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


def stop(repo: Path, config: Optional[str], **options):
    """Stop the run if it is running; anything else exits 0 with a message.
    Loads the config only, without the repo checks: an aborted build calls this
    blindly, and a broken script must not keep its run going."""
    from . import runs

    ctx = make_context(config_mod.load(repo, config), **_context_options(options))
    result = runs.stop_run(ctx, _clients(ctx))
    click.echo(result.summary())
    return result


# --------------------------------------------------------------------------- trigger (retraining on new data)


def trigger(verb: str, repo: Path, config: Optional[str], role_arn: Optional[str] = None, **options):
    """`mltp trigger install|remove|status|policy`: config only, no repo checks
    (the trigger runs the last good run's code, not the working tree's)."""
    from . import trigger as trigger_mod

    ctx = make_context(config_mod.load(repo, config), **_context_options(options))
    clients = _clients(ctx)
    if verb == "install":
        result = trigger_mod.install(ctx, clients, role_arn=role_arn)
        click.echo(result.summary())
        return result
    if verb == "remove":
        result = trigger_mod.remove(ctx, clients)
        click.echo(result.summary())
        return result
    if verb == "policy":
        click.echo(trigger_mod.policy_document(ctx, clients))
        return None
    lines = trigger_mod.status(ctx, clients)
    for line in lines:
        click.echo(line)
    return lines


# --------------------------------------------------------------------------- logs


def logs(repo: Path, config: Optional[str], run: Optional[str] = None, follow: bool = False,
         export: Optional[str] = None, local: bool = False, poll_seconds: float = 5.0, **options):
    """`mltp logs`: the run's history and job logs merged by time; `export` is
    an S3 URI, or "" for the default place beside the run's artifacts."""
    from . import runlogs

    if local:
        return runlogs.show_local(Path(repo), run, echo=click.echo)
    ctx = make_context(config_mod.load(repo, config), **_context_options(options))
    clients = _clients(ctx)
    if export is not None:
        return runlogs.export(ctx, clients, run, export or None, echo=click.echo)
    return runlogs.show(ctx, clients, run, follow=follow, echo=click.echo, poll_seconds=poll_seconds)


# --------------------------------------------------------------------------- wait, run


def wait(repo: Path, config: Optional[str], timeout: Optional[float] = None, *, poll_seconds: Optional[float] = None,
         clock=None, clients=None, echo: Echo = click.echo, **options):
    """Follow the run to its end, print the gate table, write the report folder.

    Returns the Outcome when the run passed; otherwise raises the error whose
    exit code tells what happened (GateFailed 3, RunFailed 4, AwsRefused 5).
    Loads the config only, without the repo checks: following a run needs
    nothing from the scripts. `poll_seconds` polls at that fixed interval
    (the local run); `clock` and `clients` are for tests and the benchmark."""
    from . import follow, history, report

    ctx = make_context(config_mod.load(repo, config), **_context_options(options))
    policy = follow.DEFAULT_POLICY
    if poll_seconds:
        policy = follow.PollPolicy(initial=poll_seconds, factor=1.0, cap=poll_seconds)
    clients = clients or _clients(ctx)
    result = follow.follow(ctx, clients, timeout_minutes=timeout, clock=clock, echo=echo, policy=policy)
    if result.passed and result.model_package_arn:
        _record_checksum(clients, result)
    result.history = history.collect(ctx.config.registry.model_package_group, clients, result)
    for line in report.console_lines(result):
        echo(line)
    report.write(result, ctx.report_dir)
    write_approval_files(result, ctx.report_dir)
    echo(f"report: {display(ctx.report_dir)}")
    result.raise_for_status()
    _record_good_run(ctx, clients or _clients(ctx), result, echo)
    return result


def _record_good_run(ctx: RunContext, clients, result, echo: Echo) -> None:
    """A passed default-branch run's code is what retraining runs next
    (`mltp trigger`); branch and pull-request builds record nothing."""
    if not ctx.register:
        return
    import json as json_mod

    from . import runs, trigger

    with_input = runs.describe_execution(clients, result.execution_arn) if result.execution_arn else None
    execution_input = json_mod.loads((with_input or {}).get("input") or "{}")
    if not execution_input:
        return
    try:
        echo(f"retrain code: {trigger.record_good_run(ctx, clients, execution_input)}")
    except MltpError as exc:  # the run passed: a missing permission here must not fail the build
        echo(f"warning: retraining will not use this run's code: {exc.message}")


def _record_checksum(clients, result) -> None:
    """The SHA-256 of the registered model.tar.gz, recorded on the version so
    `fetch-model` can verify what it downloads."""
    from . import registry
    from .errors import AwsRefused

    try:
        result.model_sha256 = registry.record_checksum(clients, result.model_package_arn, result.model_copy)
    except AwsRefused as exc:
        result.warnings.append(f"could not record the model's SHA-256 on {result.model_package_name}: {exc.message}")


def run(repo: Path, config: Optional[str], timeout: Optional[float] = None, local: bool = False,
        no_wait: bool = False, python: Optional[str] = None, no_preflight: bool = False, **options):
    """validate -> sync -> deploy -> start -> wait (docs/contract.md, 9.1); --no-wait returns
    once the run has started; --local runs it all against the embedded emulator."""
    if local:
        try:
            from .local import run_local
        except ImportError as exc:
            raise InvalidInput(f"--local needs the local run support, which this installation lacks ({exc})")
        return run_local(repo, config, timeout=timeout, no_wait=no_wait, python=python, **options)
    if options.pop("inputs", None) or options.pop("fetch_inputs", False):
        raise InvalidInput("--input and --fetch-inputs apply to local runs only: add --local")
    checked = validate(repo, config, **options)
    click.echo(checked.summary())
    if not no_preflight:
        preflight_checked(checked.context)
    return run_checked(checked, repo, config, timeout=timeout, no_wait=no_wait, **options)


def run_checked(checked: Validated, repo: Path, config: Optional[str], timeout: Optional[float] = None,
                no_wait: bool = False, **options):
    """sync -> deploy -> start -> wait on one validated repo (validated once, hashed once)."""
    from . import bundle as bundle_mod

    bundle = bundle_mod.make(checked.files)
    sync_checked(checked, bundle)
    deploy_checked(checked)
    start_checked(checked, bundle)
    if no_wait:
        return None
    # One run name for every step: outside Jenkins the default is a timestamp,
    # which must not change between start and wait.
    ctx = checked.context
    options = dict(options, run_name=ctx.run_name, region=ctx.region, endpoint_url=ctx.endpoint_url)
    return wait(repo, config, timeout=timeout, **options)


# --------------------------------------------------------------------------- housekeeping


def clean(repo: Path) -> str:
    """Empty REPO/.mltp/work/ (the local runs' job folders); reports stay."""
    from . import housekeeping

    freed = housekeeping.clean(repo)
    return f"clean: emptied {display(Path(repo) / housekeeping.WORK_DIR)} ({freed / 1e6:.1f} MB freed)"


def prune(repo: Path, config: Optional[str], older_than: str = "30d", yes: bool = False, echo: Echo = click.echo,
          **options):
    """List (and with `yes`, delete) branch state machines and code prefixes nothing needs any more."""
    from . import housekeeping
    from .aws import refused

    age = housekeeping.parse_age(older_than)
    cfg = config_mod.load(repo, config)
    ctx = make_context(cfg, **_context_options(options))
    clients = _clients(ctx)
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


# --------------------------------------------------------------------------- after the gate: models, approve, fetch


@dataclass(frozen=True)
class RegistryTarget:
    """Which model package group the registry commands act on, and where."""

    group: str
    region: str
    repo: Path


@contextlib.contextmanager
def registry_clients(repo: Path, config: Optional[str], local: bool = False, region: Optional[str] = None,
                     endpoint_url: Optional[str] = None, group: Optional[str] = None) -> Iterator[Tuple[RegistryTarget, "object"]]:
    """The group and clients for the registry commands: from the repo's config,
    or from --group and --region alone (a deployment job without the model repo).
    With `local`, an emulator holding the repo's local registry, saved back when
    the command ends."""
    import os

    if group:
        if local:
            raise InvalidInput("--group cannot be used with --local: the local registry belongs to the model repo")
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise InvalidInput("--group needs --region (or AWS_REGION): there is no config to read it from")
        target = RegistryTarget(group, region, Path(repo))
    else:
        cfg = config_mod.load(repo, config)
        target = RegistryTarget(cfg.registry.model_package_group, region or cfg.aws.region, cfg.repo)
    if local:
        try:
            from .local import registry_session
        except ImportError as exc:
            raise InvalidInput(f"--local needs the local run support, which this installation lacks ({exc})")
        with registry_session(cfg, target.region) as clients:
            yield target, clients
        return
    from .aws import Clients

    yield target, Clients(target.region, endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None)


def models(repo: Path, config: Optional[str], as_json: bool = False, limit: int = 20, echo: Echo = click.echo,
           **options) -> list:
    """The group's versions, newest first, with gate values, commit, build and decision."""
    from . import registry

    with registry_clients(repo, config, **options) as (target, clients):
        versions = registry.list_versions(clients, target.group, limit=limit)
    if as_json:
        echo(registry.to_json(versions))
    else:
        for line in models_table(target.group, versions):
            echo(line)
    return versions


def models_table(group: str, versions: list) -> List[str]:
    if not versions:
        return [f"model package group {group}: no versions"]
    rows = []
    for v in versions:
        metrics = " ".join(f"{k}={v.metrics[k]:g}" for k in sorted(v.metrics)) or "-"
        decision = f"{v.decided_by} {v.decided_at}".strip() or "-"
        if v.note:
            decision += f": {v.note}"
        rows.append([str(v.version), v.status, v.created.strftime("%Y-%m-%d %H:%M") if v.created else "-",
                     metrics, v.commit[:10] or "-", v.build_url or "-", decision])
    header = ["version", "status", "created (UTC)", "gate metrics", "commit", "build", "decided by"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return [f"model package group {group} (newest first):", fmt(header), *(fmt(r) for r in rows)]


def decide(repo: Path, config: Optional[str], status: str, version: Optional[str] = None, run: Optional[str] = None,
           note: Optional[str] = None, by: Optional[str] = None, echo: Echo = click.echo, **options):
    """approve / reject: UpdateModelPackage with who, when, the build and the note."""
    import os

    from . import registry

    if (version is None) == (run is None):
        raise InvalidInput("give --version N or --run NAME (one of them)")
    with registry_clients(repo, config, **options) as (target, clients):
        chosen = registry.resolve(clients, target.group, version=version, run=run)
        result = registry.decide(clients, chosen, status, registry.decider(by), os.environ.get("BUILD_URL", ""),
                                 note or "")
    echo(result.summary())
    return result


def fetch_model(repo: Path, config: Optional[str], version: Optional[str] = None, to: Optional[str] = None,
                info_file: Optional[str] = None, echo: Echo = click.echo, **options):
    """Download the newest Approved (or the named) version's model.tar.gz, verified."""
    from . import fetch, owned

    with registry_clients(repo, config, **options) as (target, clients):
        folder = Path(to) if to else owned.owned_dir(target.repo, "model")
        result = fetch.fetch(clients, target.group, folder, version)
    if result.version.status != "Approved":
        echo(f"note: {result.version.name} is {result.version.status}, not Approved")
    echo(result.summary())
    if info_file:
        _write_lines(Path(info_file), (("arn", result.version.arn), ("group", result.version.group),
                                       ("version", result.version.version), ("status", result.version.status),
                                       ("model", result.model), ("manifest", result.manifest), ("sha256", result.sha256)))
    return result


def _write_lines(path: Path, items) -> None:
    """key=value lines: what the Jenkins steps read (no JSON parsing in CPS Groovy)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={' '.join(str(v).split())}\n" for k, v in items), encoding="utf-8")


def write_approval_files(result, report_dir: Path) -> None:
    """For the Jenkins approval: registration.txt (key=value: the registered
    version and its status) and gate.txt (the gate and champion tables as printed)."""
    from . import report

    report_dir = Path(report_dir)
    lines = report.console_lines(result)
    gate_text = [line for line in lines if line and not line.startswith(("model package:", "report:"))]
    (report_dir / "gate.txt").write_text("\n".join(gate_text) + "\n", encoding="utf-8")
    registration = report_dir / "registration.txt"
    if result.model_package_arn:
        name = result.model_package_name or ""
        _write_lines(registration, (("model_package_arn", result.model_package_arn),
                                    ("group", name.rsplit("/", 1)[0]), ("version", name.rsplit("/", 1)[-1]),
                                    ("approval_status", result.approval_status or ""),
                                    ("sha256", result.model_sha256 or "")))
    elif registration.exists():
        registration.unlink()
