"""What a run will do with each step before it spends anything: run it, or
reuse an earlier run's outputs (the step cache, docs/contract.md 8.4).

`mltp plan` prints it; `mltp start` (and so `mltp run`) makes the same plan,
prints it, and passes the decisions in the execution input's `Cache`:

    {"keys":  {"Preprocessing": "<key>", ...},        every step with cache: true
     "parts": {"Preprocessing": {"code": ..., ...}},   what each key is made of
     "reuse": {"Preprocessing": "<run>", ...},         the steps taken from earlier runs
     "from_default": ["Preprocessing", ...]}           ... of those, the ones a branch
                                                       took from the default branch

The state machine's Reuse<Step> Choice states skip a step named in `reuse`,
and the output locations of a reused step (its execution input values) are
the earlier run's; for a branch's default-branch hit, they are the branch
run's own, where `start` copied the default run's outputs first
(commands.plan.copy_default_hits). `mltp wait` writes a record for each cached
step that ran and succeeded (cache_index). Retrain runs of `mltp trigger` get the
same decisions from the function (trigger_handler.retrain_cache, on cache_rules),
from the default branch's records only.
Read-only: nothing here writes anything (LocalIndex.materialize aside, which
only the start of a local run calls).
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from . import cache_index, cache_rules, step_cache
from .config import Config
from .outcome import format_duration


@dataclass
class StepPlan:
    role: str
    enabled: bool
    key: step_cache.StepKey
    hit: Optional[cache_index.Record] = None
    reason: str = ""  # why it runs
    # A branch's hit on the default branch's records: its outputs are copied into
    # the branch run's own folder before the run starts, and `outputs` then names them.
    from_default: bool = False
    outputs: Optional[Dict[str, str]] = None  # what the reused step hands on, when not hit.outputs

    @property
    def origin(self) -> str:
        """'<run>', or '<run> on the default branch'."""
        return f"{self.hit.run}{DEFAULT_BRANCH if self.from_default else ''}" if self.hit else ""

    @property
    def state(self) -> str:
        return step_cache.STATES[self.role]

    def decision(self, now: datetime) -> str:
        if self.hit is not None:
            return f"cached (from {self.origin}, {age_text(self.hit.age(now))} ago)"
        return f"run ({self.reason})" if self.reason else "run"


@dataclass
class Plan:
    steps: List[StepPlan]
    where: str = ""  # the cache index read
    now: datetime = field(default_factory=cache_index.now_utc)
    # Whether preprocessing's key covers the inputs' objects: they are listed (or,
    # locally, hashed) only when a step uses the cache; otherwise it covers their names.
    inputs_listed: bool = True

    def lines(self) -> List[str]:
        return [f"plan: {s.state:<14} {s.decision(self.now)}" for s in self.steps]

    @property
    def enabled(self) -> bool:
        return any(s.enabled for s in self.steps)

    def reused(self) -> Dict[str, cache_index.Record]:
        return {s.state: s.hit for s in self.steps if s.hit is not None}

    def from_default(self) -> List["StepPlan"]:
        """The hits a branch takes from the default branch: to be copied before the run."""
        return [s for s in self.steps if s.hit is not None and s.from_default]

    def cache_input(self) -> Dict[str, object]:
        """The execution input's `Cache`: every step's key (what `mltp resume`
        compares), the steps with the cache on (whose records `wait` writes), and
        the steps taken from earlier runs."""
        out = {
            "keys": {s.state: s.key.key for s in self.steps},
            "parts": {s.state: dict(s.key.parts) for s in self.steps},
            "cached": [s.state for s in self.steps if s.enabled],
            "inputs_listed": self.inputs_listed,
            "reuse": {state: record.run for state, record in self.reused().items()},
        }
        if self.from_default():
            out["from_default"] = [s.state for s in self.from_default()]
        return out

    def input_overrides(self) -> Dict[str, object]:
        """The execution input values a reused step hands on: the earlier run's,
        or, for a default-branch hit, the copy's in this run's own folder."""
        for step in self.from_default():
            if step.outputs is None:  # never hand a branch's jobs the default branch's runs/
                raise ValueError(f"{step.state}: a default-branch hit must be copied first")
        values: Dict[str, object] = {"Cache": self.cache_input()}
        for step in self.steps:
            if step.hit is not None:
                values.update(step.outputs if step.outputs is not None else step.hit.outputs)
        return values


def age_text(delta) -> str:
    seconds = max(0.0, delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{int(seconds // 86400)} days"
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"
    return format_duration(seconds) or "0s"


DEFAULT_BRANCH = " on the default branch"


def make(config: Config, files: Sequence, inputs: Mapping[str, str], index, no_cache: bool = False,
         now: Optional[datetime] = None, region: Optional[str] = None, fallback=None) -> Plan:
    """`files`: the code bundle's files; `inputs`: preprocessing input name ->
    step_cache.objects_digest; `index`: cache_index.S3Index or LocalIndex;
    `fallback`: for a branch or pull request, the default branch's index
    (cache_index.default_index), read when its own has no usable record."""
    now = now or cache_index.now_utc()
    keys = step_cache.step_keys(config, files, inputs, region)
    steps: List[StepPlan] = []
    for role in step_cache.ROLES:
        step = getattr(config.steps, role)
        plan = StepPlan(role, enabled=step.cache and not no_cache, key=keys[role])
        steps.append(plan)
        if no_cache:
            plan.reason = "--no-cache"
            continue
        if not step.cache:
            plan.reason = "cache: false"
            continue
        plan.hit, plan.reason, own = _lookup(index, plan.key, step.cache_expire_days, now)
        if plan.hit is None and fallback is not None:
            hit, reason, default = _lookup(fallback, plan.key, step.cache_expire_days, now, DEFAULT_BRANCH)
            if hit is not None:
                plan.hit, plan.reason, plan.from_default = hit, "", True
            elif default and not own:  # the branch ran it never: what the default branch has says why
                plan.reason = reason
    where = index.where() if steps else ""
    if where and fallback is not None:
        where += f", then {fallback.where()} (the default branch's)"
    return Plan(steps, where, now, inputs_listed=any(s.enabled for s in steps))


def _lookup(index, key: step_cache.StepKey, expire_days: int, now: datetime, suffix: str = ""
            ) -> Tuple[Optional[cache_index.Record], str, bool]:
    """The newest usable record with this key, or None and why none; and whether
    the index has any record of the step. `suffix` follows each run named."""
    same = sorted(index.records(key.role, key.key), key=lambda r: r.finished_at, reverse=True)
    hit, gone = cache_rules.pick(same, now, expire_days, lambda r: r.finished_at, index.available)
    if hit is not None:
        return hit, "", True
    if gone is not None:
        return None, f"the outputs of {gone.run}{suffix} are gone", True
    if same:
        return None, (f"{same[0].run}{suffix} had this key but is {age_text(same[0].age(now))} old, "
                      f"over cache_expire_days {expire_days}"), True
    latest = cache_index.newest(index.records(key.role))
    if latest is None:
        return None, "no earlier run to reuse", False
    changed = key.changed(latest.parts)
    return None, f"{', '.join(changed) or 'key'} changed since {latest.run}{suffix}", True


# --------------------------------------------------------------------------- the inputs' digests


def s3_input_digests(clients, config: Config) -> Dict[str, str]:
    """Each preprocessing input's objects (relative key, ETag) as listed now."""
    out: Dict[str, str] = {}
    for item in config.steps.preprocessing.inputs:
        out[item.name] = step_cache.objects_digest(cache_rules.listed_objects(clients.s3, item.source))
    return out


def local_input_digests(local_inputs: Sequence) -> Dict[str, str]:
    """Each input's local data (local.inputs.LocalInput): relative path and SHA-256 of every file."""
    import hashlib

    out: Dict[str, str] = {}
    for local in local_inputs:
        path = local.path
        files = [(path, path.name)] if path.is_file() else \
            [(p, p.relative_to(path).as_posix()) for p in sorted(path.rglob("*")) if p.is_file()]
        objects = []
        for file, rel in files:
            digest = hashlib.sha256()
            with open(file, "rb") as handle:
                for chunk in iter(lambda: handle.read(1024 * 1024), b""):
                    digest.update(chunk)
            objects.append((rel, digest.hexdigest()))
        out[local.item.name] = step_cache.objects_digest(objects)
    return out
