"""How much `mltp wait` costs and how quickly it shows step changes.

Runs the real `follow.follow` (the loop behind `mltp wait`) with a fake clock
and stub AWS clients that simulate executions of the pipeline's shape, and
prints per scenario: the AWS calls `wait` made, scaled to calls per
execution-hour, and the worst delay between a step change (a state entered or
exited, the execution's end) and the poll that showed it.

Targets: at most 150 calls per execution-hour; step changes shown within 30 s.

    python benchmarks/bench_wait.py
"""

import io
import json
import random
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "helper" / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from mltp import config as config_mod  # noqa: E402
from mltp import follow, naming  # noqa: E402
from mltp.context import make_context  # noqa: E402

T0 = datetime(2024, 5, 1, 9, 0, 0, tzinfo=timezone.utc)
CALLS_TARGET = 150
DELAY_TARGET = 30.0


class Meta:
    partition = "aws"


class FakeSfn:
    """Step Functions as `wait` sees it: a history growing with the clock, paged
    the way AWS pages it (a nextToken only while a page is full)."""

    meta = Meta()

    def __init__(self, clock, events: List[Tuple[float, str, dict]], data: dict, calls: Counter):
        self.clock = clock
        self.events = events  # (seconds after start, type, details), in time order
        self.data = data
        self.calls = calls
        self.first_shown: Dict[int, float] = {}

    def _visible(self):
        now = self.clock.now()
        return [e for e in self.events if e[0] <= now]

    def describe_execution(self, executionArn):
        self.calls["sfn.DescribeExecution"] += 1
        visible = self._visible()
        last = visible[-1][1] if visible else ""
        status = follow.TERMINAL_EVENTS.get(last, "RUNNING")
        return {"executionArn": executionArn, "status": status, "input": json.dumps(self.data),
                "startDate": T0, "output": "{}" if status == "SUCCEEDED" else None}

    def get_execution_history(self, executionArn, maxResults, reverseOrder=False, nextToken=None):
        self.calls["sfn.GetExecutionHistory"] += 1
        start = int(nextToken or 0)
        page = []
        for i, (at, kind, details) in enumerate(self._visible()[start:start + maxResults], start=start + 1):
            event = {"id": i, "type": kind, "timestamp": T0 + timedelta(seconds=at)}
            key = ("stateEnteredEventDetails" if kind.endswith("StateEntered") else
                   "stateExitedEventDetails" if kind.endswith("StateExited") else
                   kind[0].lower() + kind[1:] + "EventDetails")
            event[key] = details
            page.append(event)
            self.first_shown.setdefault(i, self.clock.now())
        result = {"events": page}
        if len(page) == maxResults:
            result["nextToken"] = str(start + maxResults)
        return result


class Body(io.BytesIO):
    pass


class FakeS3:
    def __init__(self, calls: Counter):
        self.calls = calls

    def get_object(self, Bucket, Key):
        self.calls["s3.GetObject"] += 1
        body = {"metrics": {"auc": {"value": 0.962}, "false_positive_rate": {"value": 0.0007}}}
        return {"Body": Body(json.dumps(body).encode())}


class FakeSageMaker:
    def __init__(self, calls: Counter):
        self.calls = calls

    def list_model_packages(self, **request):
        self.calls["sagemaker.ListModelPackages"] += 1
        return {"ModelPackageSummaryList": [{"ModelPackageArn": "arn:aws:sagemaker:r:1:model-package/m/3"}]}

    def describe_model_package(self, ModelPackageName):
        self.calls["sagemaker.DescribeModelPackage"] += 1
        return {"ModelApprovalStatus": "PendingManualApproval", "CustomerMetadataProperties": {"RunName": "bench"}}


class FakeClients:
    def __init__(self, sfn, calls: Counter):
        self.sfn = sfn
        self.s3 = FakeS3(calls)
        self.sagemaker = FakeSageMaker(calls)
        self.logs = None

    def account_id(self) -> Optional[str]:  # runs.execution_arn asks STS once
        self.sfn.calls["sts.GetCallerIdentity"] += 1
        return "123456789012"


def job(name: str, start: float, end: float, kind: str = "processing") -> List[Tuple[float, str, dict]]:
    """A SageMaker .sync task's events, spaced as Step Functions writes them."""
    task = {"resourceType": "sagemaker", "resource": f"create{'Training' if kind == 'training' else 'Processing'}Job.sync"}
    return [
        (start, "TaskStateEntered", {"name": name, "input": "{}"}),
        (start + 0.1, "TaskScheduled", dict(task, region="ap-northeast-2", parameters="{}")),
        (start + 0.2, "TaskStarted", task),
        (start + 0.9, "TaskSubmitted", dict(task, output="{}")),
        (end, "TaskSucceeded", dict(task, output="{}")),
        (end + 0.05, "TaskStateExited", {"name": name, "output": "{}"}),
    ]


def pipeline(prep: float, train: float, evaluation: float, end: float) -> List[Tuple[float, str, dict]]:
    events = [(0.0, "ExecutionStarted", {"input": "{}", "roleArn": "arn:aws:iam::1:role/x"})]
    events += job("Preprocessing", 0.2, prep) + job("Training", prep + 0.3, train, "training")
    events += job("Evaluation", train + 0.3, evaluation)
    events += job("ReadEvaluation", evaluation + 0.3, evaluation + 1.0)
    events += [(evaluation + 1.2, "ChoiceStateEntered", {"name": "Gate"}),
               (evaluation + 1.25, "ChoiceStateExited", {"name": "Gate", "output": "{}"}),
               (evaluation + 1.3, "ChoiceStateEntered", {"name": "ShouldRegister"}),
               (evaluation + 1.35, "ChoiceStateExited", {"name": "ShouldRegister", "output": "{}"})]
    events += job("Register", evaluation + 1.5, end - 0.5)
    events += [(end - 0.2, "SucceedStateEntered", {"name": "Done"}),
               (end, "ExecutionSucceeded", {"output": json.dumps({"register": {"ModelPackageArn": "arn:x/3"}})})]
    return sorted(events, key=lambda e: e[0])


def scenario(prep: float, train: float, evaluation: float):
    """Job end times in seconds; the quick steps after evaluation take a few seconds."""
    return lambda rnd: pipeline(*jittered(rnd, prep, train, evaluation), evaluation + 5)


def jittered(rnd, *times: float) -> List[float]:
    """Each step's end moved by up to a minute, so changes fall anywhere between polls."""
    return [t + rnd.uniform(-60, 0) for t in times]


SCENARIOS = {
    # name: (builder, nominal duration in seconds)
    "typical hour (prep 10 min, training 35 min, evaluation 15 min)": (scenario(600, 2700, 3595), 3600),
    "short run (3 jobs in 12 min)": (scenario(240, 480, 715), 720),
    "long training (4 h, one quiet step)": (scenario(900, 13500, 14395), 14400),
}
TRIALS = 100


def is_step_change(kind: str) -> bool:
    return kind.endswith(("StateEntered", "StateExited")) or kind in follow.TERMINAL_EVENTS


def run(events, duration: float) -> Dict[str, float]:
    cfg = config_mod.load(ROOT / "examples" / "fraud-detection")
    ctx = make_context(cfg, run_name="bench", env={})
    data = naming.execution_input(cfg, ctx.state_machine, ctx.run_name, "abc", register=True).to_dict()
    calls: Counter = Counter()
    clock = follow.ManualClock()
    sfn = FakeSfn(clock, events, data, calls)
    result = follow.follow(ctx, FakeClients(sfn, calls), clock=clock, echo=lambda line: None)
    assert result.status == "passed", result.message
    delays = [sfn.first_shown[i] - at for i, (at, kind, _) in enumerate(events, start=1) if is_step_change(kind)]
    total = sum(calls.values())
    return {
        "calls": total,
        "history": calls["sfn.GetExecutionHistory"],
        "other": total - calls["sfn.GetExecutionHistory"],
        "per_hour": total * 3600 / duration,
        "worst_delay": max(delays),
        "mean_delay": sum(delays) / len(delays),
        "longest_sleep": max(clock.sleeps),
    }


def measure() -> dict:
    """Per scenario: the worst and mean calls, calls per execution-hour, and step-change delays."""
    out = {}
    for name, (build, nominal) in SCENARIOS.items():
        rnd = random.Random(42)
        trials = []
        for _ in range(TRIALS):
            events = build(rnd)
            trials.append(run(events, events[-1][0]))
        worst_calls = max(trials, key=lambda f: f["per_hour"])
        out[name] = {"nominal": nominal, "worst_calls": worst_calls, "per_hour": worst_calls["per_hour"],
                     "worst_delay": max(f["worst_delay"] for f in trials),
                     "mean_delay": sum(f["mean_delay"] for f in trials) / len(trials),
                     "mean_calls": sum(f["calls"] for f in trials) / len(trials)}
    return out


# What a user would otherwise run: a shell loop of `aws stepfunctions
# get-execution-history` every 30 s shows each change at most 30 s late.
ANCHOR_INTERVAL = 30.0


def rows(quick: bool = False) -> list:
    from common import Row, at_most

    result = measure()
    long_runs = [r for r in result.values() if r["nominal"] >= 3600]  # the per-hour goal is about long waits
    per_hour = max(r["per_hour"] for r in long_runs)
    delay = max(r["worst_delay"] for r in result.values())
    anchor_calls = 3600 / ANCHOR_INTERVAL
    return [
        Row("AWS calls per execution-hour while waiting", f"{per_hour:.0f} (worst run)",
            f"a {ANCHOR_INTERVAL:g} s polling loop: {anchor_calls:.0f}", per_hour / anchor_calls,
            f"<= {CALLS_TARGET}", at_most(per_hour, CALLS_TARGET, "", 0)),
        Row("  worst delay before a step change is shown", f"{delay:.1f} s",
            f"that loop: {ANCHOR_INTERVAL:.1f} s", delay / ANCHOR_INTERVAL, f"<= {DELAY_TARGET:g} s",
            at_most(delay, DELAY_TARGET, " s", 1)),
    ]


def main() -> int:
    policy = follow.DEFAULT_POLICY
    print(f"poll policy: {policy.initial:g} s after a change, x{policy.factor:g} per quiet poll, capped at "
          f"{policy.cap:g} s; history page size {policy.page_size}; {TRIALS} runs per scenario, "
          f"step ends jittered by up to 60 s")
    ok = True
    for name, figures in measure().items():
        nominal, worst_calls, per_hour = figures["nominal"], figures["worst_calls"], figures["per_hour"]
        worst_delay, mean_delay = figures["worst_delay"], figures["mean_delay"]
        # The per-hour target is about long waits; a short run's few calls are reported as they are.
        good = (per_hour <= CALLS_TARGET or nominal < 3600) and worst_delay <= DELAY_TARGET
        ok = ok and good
        print(f"\n{name}")
        print(f"  AWS calls (worst run):      {worst_calls['calls']} ({worst_calls['history']} GetExecutionHistory, "
              f"{worst_calls['other']} other); mean {figures['mean_calls']:.1f}")
        if nominal >= 3600:
            print(f"  calls per execution-hour:   {per_hour:.0f} worst   (target <= {CALLS_TARGET})")
        else:
            print(f"  calls per execution-hour:   not meaningful for a {nominal / 60:.0f}-min run "
                  f"(the fixed costs of its {worst_calls['calls']} calls scale up)")
        print(f"  step-change delay:          {worst_delay:.1f} s worst (target <= {DELAY_TARGET:g} s), "
              f"{mean_delay:.1f} s mean")
        print(f"  {'OK' if good else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
