"""`mltp plan`: one line per step, `run` or `cached (from <run>, <age>)`, and
why a step cannot be reused; read-only (docs/contract.md, 8.4 and 9.1).

`start` makes the same plan for the run it starts (`for_run`). A branch or
pull request reads its own records, then the default branch's; a hit on the
default branch's is copied into the run's own folder before it starts."""

from typing import List

from ..invocation import Invocation


def plan(inv: Invocation, clients=None, bundle=None) -> List[str]:
    """The plan's lines. `clients`: AWS's, or None for `--local` (the repo's
    .mltp/cache/ and the inputs' local data in inv.local_inputs, no emulator)."""
    found = make_plan(inv, clients, bundle)
    lines = found.lines()
    if inv.no_cache:
        lines.append("plan: --no-cache: every step runs")
    elif not found.enabled:
        lines.append("plan: no step has cache: true, so every step runs (steps.<step>.cache in config.yaml)")
    else:
        lines.append(f"plan: cache read from {found.where}")
    return lines


def make_plan(inv: Invocation, clients, bundle=None):
    from .. import bundle as bundle_mod
    from .. import cache_index
    from .. import plan as plan_mod
    from ..aws import refused

    cfg = inv.config
    bundle = bundle or bundle_mod.make(inv.files or ())
    enabled = any(s.cache for s in cfg.steps.all()) and not inv.no_cache
    if inv.local or clients is None:
        index = cache_index.LocalIndex(cfg, inv.run.state_machine, clients)
        inputs = plan_mod.local_input_digests(inv.local_inputs) if enabled else {}
        return plan_mod.make(cfg, bundle.files, inputs, index, no_cache=inv.no_cache, region=inv.run.region,
                             fallback=cache_index.default_index(index))
    index = cache_index.S3Index(clients, cfg, inv.run.state_machine)
    fallback = cache_index.default_index(index)
    where = f"the inputs and {index.where()}" + (f", {fallback.where()}" if fallback else "")
    with refused("step cache: reading", where):
        inputs = plan_mod.s3_input_digests(clients, cfg) if enabled else {}
        return plan_mod.make(cfg, bundle.files, inputs, index, no_cache=inv.no_cache, region=inv.run.region,
                             fallback=fallback)


def for_run(inv: Invocation, clients, bundle) -> dict:
    """The plan of the run `start` is about to start: its lines said (when a step
    uses the cache), a local hit's outputs put back into the emulator's S3, and
    the execution input's values (Cache, and a reused step's outputs). Without
    the cache it reads nothing and lists nothing: it only computes the keys."""
    from dataclasses import replace

    from ..errors import AwsRefused

    try:
        found = make_plan(inv, clients, bundle)
    except AwsRefused as exc:  # the cache is a saving, not a must: run every step
        inv.echo(f"plan: cannot read the step cache ({exc.message}); every step runs")
        found = make_plan(replace(inv, no_cache=True), clients, bundle)
    copied = copy_default_hits(inv, clients, found)  # before the lines: a failed copy makes its step run
    if found.enabled:
        for line in found.lines():
            inv.echo(line)
    elif inv.no_cache and any(s.cache for s in inv.config.steps.all()):
        inv.echo("plan: --no-cache: every step runs")
    for line in copied:
        inv.echo(line)
    if inv.local:
        from .. import cache_index

        index = cache_index.LocalIndex(inv.config, inv.run.state_machine, clients)
        for step in found.steps:
            if step.hit is not None and not step.from_default:
                index.materialize(step.hit)
    return found.input_overrides()


def copy_default_hits(inv: Invocation, clients, found) -> List[str]:
    """A branch's or pull request's hits on the default branch's records: each
    step's outputs copied, with the build's own credentials, into this run's own
    folder, which the state machine then hands on (docs/contract.md 8.4): the
    branch's jobs never need to read the default branch's runs. A copy that
    fails makes its step run instead (what it copied before failing lies where
    the step's job writes the same names). Returns the log lines."""
    import botocore.exceptions

    from .. import cache_index
    from ..errors import MltpError

    hits = found.from_default()
    if not hits:
        return []
    ctx = inv.run
    own = (cache_index.LocalIndex(inv.config, ctx.state_machine, clients) if inv.local
           else cache_index.S3Index(clients, inv.config, ctx.state_machine))
    source = cache_index.default_index(own)
    lines = []
    for step in hits:
        origin = step.origin
        outputs = cache_index.own_outputs(inv.config, ctx.state_machine, ctx.run_name, step.role)
        try:
            copied = source.copy_into(step.hit, outputs)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, MltpError, OSError) as exc:
            step.hit, step.from_default = None, False
            step.reason = f"could not copy the outputs of {origin}: {exc}"
            lines.append(f"warning: cache: {step.state} runs: could not copy the outputs of {origin}: {exc}")
            continue
        step.outputs = outputs
        lines.append(f"cache: {step.state} copied from {origin} into this run's folder ({copied.text()})")
    return lines
