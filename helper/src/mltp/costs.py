"""What a run cost (docs/runs-and-reports.md, "Cost"): per job, its billable
seconds x instance count x the on-demand price of its instance type in the
run's region (pricing.py), summed for the run.

- training job: BillableTimeInSeconds, as SageMaker bills it (for a spot job
  the time actually run on spot capacity); when SageMaker gives none (a job that
  failed to start), TrainingStartTime to TrainingEndTime;
- processing job: ProcessingStartTime to ProcessingEndTime;
- a step that started no job (cached, not run) costs nothing: $0.00;
- spot savings as SageMaker reports them: 1 - BillableTimeInSeconds /
  TrainingTimeInSeconds, for the run over its spot training jobs.

A price that cannot be had makes that job's cost, and the run's total,
"price unknown", with the reason; nothing fails for want of a price.

Local runs show no cost: their jobs ran on this machine, for as long as this
machine took, which says nothing of how long the instance would have been
billed; `collect` returns None for them and the reports show nothing.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional

from . import pricing

UNKNOWN = "price unknown"


@dataclass
class JobCost:
    step: str
    job_name: Optional[str]
    kind: Optional[str]  # training | processing | None (no job)
    instance_type: Optional[str] = None
    instance_count: int = 0
    billable_seconds: Optional[float] = None
    training_seconds: Optional[float] = None  # training: TrainingTimeInSeconds
    spot: bool = False
    usd_per_hour: Optional[float] = None
    usd: Optional[float] = None
    note: str = ""  # "cached", "no job", or why the price is unknown

    @property
    def spot_savings(self) -> Optional[float]:
        if not self.spot or not self.training_seconds or self.billable_seconds is None:
            return None
        return max(0.0, 1.0 - self.billable_seconds / self.training_seconds)

    def to_dict(self) -> Dict[str, Any]:
        return {"step": self.step, "job_name": self.job_name, "kind": self.kind,
                "instance_type": self.instance_type, "instance_count": self.instance_count,
                "billable_seconds": self.billable_seconds, "training_seconds": self.training_seconds,
                "spot": self.spot, "spot_savings": self.spot_savings, "usd_per_hour": self.usd_per_hour,
                "usd": self.usd, "note": self.note}


@dataclass
class RunCost:
    jobs: List[JobCost] = field(default_factory=list)
    currency: str = "USD"

    @property
    def total_usd(self) -> Optional[float]:
        """The run's cost; None when the price of a billed job is unknown."""
        if any(job.usd is None for job in self.jobs):
            return None
        return round(sum(job.usd or 0.0 for job in self.jobs), 6)

    @property
    def spot_savings(self) -> Optional[float]:
        spot = [job for job in self.jobs if job.spot_savings is not None]
        trained = sum(job.training_seconds or 0.0 for job in spot)
        if not spot or not trained:
            return None
        return max(0.0, 1.0 - sum(job.billable_seconds or 0.0 for job in spot) / trained)

    def text(self) -> str:
        """'$1.84, spot saved 61%' / '$0.12' / 'price unknown'."""
        total = self.total_usd
        head = usd_text(total) if total is not None else UNKNOWN
        savings = self.spot_savings
        return f"{head}, spot saved {savings:.0%}" if savings is not None else head

    def to_dict(self) -> Dict[str, Any]:
        unknown = sorted({job.note for job in self.jobs if job.usd is None and job.note})
        return {"currency": self.currency, "total_usd": self.total_usd, "spot_savings": self.spot_savings,
                "text": self.text(), "unknown": unknown, "jobs": [job.to_dict() for job in self.jobs]}


def usd_text(value: Optional[float]) -> str:
    if value is None:
        return UNKNOWN
    if 0 < value < 0.005:
        return "<$0.01"
    return f"${value:,.2f}"


# --------------------------------------------------------------------------- gathering


def collect(clients, region: str, steps, local: bool = False, cache=None) -> Optional[RunCost]:
    """The cost of the run's steps (outcome.StepRecord), or None for a local run."""
    if local:
        return None
    cost = RunCost()
    prices: Dict[tuple, pricing.Price] = {}
    for step in steps:
        if step.job_kind not in pricing.COMPONENTS:
            continue
        job = JobCost(step.name, step.job_name, step.job_kind)
        cost.jobs.append(job)
        if str(step.status) in ("cached", "not run"):  # started no job: nothing billed
            job.usd, job.note = 0.0, str(step.status)
            continue
        if not step.job_name:
            job.note = f"{UNKNOWN}: the step's job is not known"
            continue
        if not _describe(clients, job):
            continue
        if not job.instance_type or job.billable_seconds is None:
            job.note = job.note or "no billable time reported"
            continue
        key = (region, job.instance_type, job.kind)
        if key not in prices:
            # The API unreachable or refused once: the other instance types are not asked (each
            # ask may wait for timeouts), the cache still answers for them.
            blocked = next((p for p in prices.values() if p.reason in pricing.BLOCKED), None)
            prices[key] = pricing.lookup(clients, region, job.instance_type, job.kind, cache=cache,
                                         ask_with=None if blocked is None else (lambda *_: blocked))
        price = prices[key]
        job.usd_per_hour = price.usd_per_hour
        if price.usd_per_hour is None:
            job.note = f"{UNKNOWN}: {price.reason}"
            continue
        job.usd = round(job.billable_seconds / 3600.0 * max(1, job.instance_count) * price.usd_per_hour, 6)
    return cost


def _describe(clients, job: JobCost) -> bool:
    """The job's instances and billable time, from Describe*Job; False (and a note) if unreadable."""
    import botocore.exceptions

    from .aws import error_code

    try:
        if job.kind == "training":
            found = clients.sagemaker.describe_training_job(TrainingJobName=job.job_name)
            resources = found.get("ResourceConfig") or {}
            job.instance_type = resources.get("InstanceType")
            job.instance_count = int(resources.get("InstanceCount") or 1)
            job.spot = bool(found.get("EnableManagedSpotTraining"))
            billable = found.get("BillableTimeInSeconds")
            job.billable_seconds = float(billable) if billable is not None else _seconds(
                found.get("TrainingStartTime"), found.get("TrainingEndTime"))
            trained = found.get("TrainingTimeInSeconds")
            job.training_seconds = float(trained) if trained is not None else None
        else:
            found = clients.sagemaker.describe_processing_job(ProcessingJobName=job.job_name)
            cluster = (found.get("ProcessingResources") or {}).get("ClusterConfig") or {}
            job.instance_type = cluster.get("InstanceType")
            job.instance_count = int(cluster.get("InstanceCount") or 1)
            job.billable_seconds = _seconds(found.get("ProcessingStartTime"), found.get("ProcessingEndTime"))
    except botocore.exceptions.ClientError as exc:
        job.note = f"{UNKNOWN}: the job could not be read ({error_code(exc) or 'error'})"
        return False
    except botocore.exceptions.BotoCoreError:
        job.note = f"{UNKNOWN}: the job could not be read"
        return False
    return True


def _seconds(start: Any, end: Any) -> Optional[float]:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return max(0.0, (end - start).total_seconds())
    return None


# --------------------------------------------------------------------------- showing


def _duration(seconds: Optional[float]) -> str:
    from .outcome import format_duration

    return "-" if seconds is None else (format_duration(seconds) or "0s")


def table_rows(cost: Optional[Dict[str, Any]]) -> List[List[str]]:
    """step, instances, billable time, price per hour, cost, spot saved: from report.json's `cost`."""
    rows = []
    for job in (cost or {}).get("jobs") or []:
        count, instance = job.get("instance_count") or 0, job.get("instance_type")
        instances = f"{count} x {instance}" if instance else "-"
        price = f"${job['usd_per_hour']:.4g}/h" if job.get("usd_per_hour") is not None else "-"
        if job.get("usd") is not None:
            amount = usd_text(job["usd"]) + (f" ({job['note']})" if job.get("note") else "")
        else:
            amount = job.get("note") or UNKNOWN
        savings = job.get("spot_savings")
        rows.append([str(job.get("step")), instances, _duration(job.get("billable_seconds")), price, amount,
                     f"{savings:.0%}" if savings is not None else "-"])
    return rows


HEADER = ["step", "instances", "billable", "price", "cost", "spot saved"]


def console_lines(outcome) -> List[str]:
    """The cost table `wait` prints: nothing for a run without a cost (local)."""
    cost = getattr(outcome, "cost", None)
    if cost is None:
        return []
    rows = [HEADER, *table_rows(cost.to_dict())]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return [f"cost: {cost.text()}", *lines]


def summary_suffix(outcome) -> str:
    """' · $1.84, spot saved 61%' for summary.txt (the build description); '' without a cost."""
    cost = getattr(outcome, "cost", None)
    return f" · {cost.text()}" if cost is not None else ""
