"""The cost of a run (costs.py, pricing.py; docs/runs-and-reports.md "Cost").

The price lookup runs botocore's own pricing client over HTTP against a small
server that answers GetProducts from a recorded Price List answer
(tests/fixtures/pricing/), filtered by the request's TERM_MATCH filters as
the service does: moto implements no Price List API. The jobs are described
by moto's SageMaker, their billing fields set as SageMaker reports them."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mltp import costs, pricing
from mltp import outcome as out
from mltp.aws import Clients

from stand_in import StandIn

ROOT = Path(__file__).resolve().parents[2]
RECORDED = json.loads((ROOT / "tests" / "fixtures" / "pricing" / "get-products-sagemaker.json").read_text())
REGION = "eu-west-1"
ACCOUNT = "123456789012"


class PriceList(StandIn):
    """GetProducts over HTTP: the recorded products that match every TERM_MATCH
    filter (an attribute, or the product's family), a page at a time."""

    def __init__(self):
        self.deny = False
        super().__init__(self._route)

    @property
    def calls(self):
        return [{"target": headers.get("X-Amz-Target"), "authorization": headers.get("Authorization", ""),
                 "body": json.loads(body or b"{}")} for _, _, body, headers in self.requests]

    def _route(self, method, path, headers):
        body = json.loads(path.split("?", 1)[1] or "{}")
        if self.deny:
            return _json(400, {"__type": "AccessDeniedException",
                               "Message": "User is not authorized to perform: pricing:GetProducts"})
        if headers.get("X-Amz-Target") != "AWSPriceListService.GetProducts":
            return _json(400, {"__type": "InvalidParameterException", "Message": "unknown operation"})
        wanted = {f["Field"]: f["Value"] for f in body.get("Filters", []) if f["Type"] == "TERM_MATCH"}
        matching = [text for text in RECORDED["PriceList"] if all(_field(text, k) == v for k, v in wanted.items())]
        start = int(body.get("NextToken") or 0)
        size = body.get("MaxResults") or 100
        answer = {"FormatVersion": RECORDED["FormatVersion"], "PriceList": matching[start:start + size]}
        if start + size < len(matching):
            answer["NextToken"] = str(start + size)
        return _json(200, answer)


def _field(text, name):
    product = json.loads(text)["product"]
    return product.get(name) if name == "productFamily" else product["attributes"].get(name)


def _json(status, data):
    return status, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(data).encode()


@pytest.fixture
def price_list(monkeypatch):
    server = PriceList()
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        yield server
    finally:
        server.close()


# --------------------------------------------------------------------------- the lookup


def test_the_price_comes_from_get_products_with_exact_filters(price_list, tmp_path):
    clients = Clients(REGION)
    training = pricing.lookup(clients, REGION, "ml.m5.xlarge", "training", cache=tmp_path)
    processing = pricing.lookup(clients, REGION, "ml.m5.large", "processing", cache=tmp_path)
    assert (training.usd_per_hour, training.cached) == (0.256, False)
    assert processing.usd_per_hour == 0.128
    first = price_list.calls[0]
    assert first["target"] == "AWSPriceListService.GetProducts"
    assert "/us-east-1/pricing/aws4_request" in first["authorization"]  # the API's own region, signed for it
    assert first["body"]["ServiceCode"] == "AmazonSageMaker"
    assert {f["Field"]: f["Value"] for f in first["body"]["Filters"]} == {
        "productFamily": "ML Instance", "regionCode": REGION, "instanceName": "ml.m5.xlarge",
        "platoinstancetype": "Training"}
    assert all(f["Type"] == "TERM_MATCH" for f in first["body"]["Filters"])


def test_prices_are_kept_for_a_week(price_list, tmp_path):
    clients = Clients(REGION)
    now = 1_800_000_000.0
    assert pricing.lookup(clients, REGION, "ml.m5.xlarge", "training", cache=tmp_path, now=now).usd_per_hour == 0.256
    asked = len(price_list.calls)
    again = pricing.lookup(clients, REGION, "ml.m5.xlarge", "training", cache=tmp_path, now=now + 6 * 86400)
    assert (again.usd_per_hour, again.cached, len(price_list.calls)) == (0.256, True, asked)
    stale = pricing.lookup(clients, REGION, "ml.m5.xlarge", "training", cache=tmp_path, now=now + 8 * 86400)
    assert (stale.cached, len(price_list.calls)) == (False, asked + 1)
    saved = json.loads((tmp_path / "prices.json").read_text())
    assert saved["prices"]["eu-west-1/Training/ml.m5.xlarge"] == {"usd_per_hour": 0.256, "at": now + 8 * 86400}
    # A damaged cache is asked again, never trusted.
    (tmp_path / "prices.json").write_text("{not json")
    assert pricing.lookup(clients, REGION, "ml.m5.xlarge", "training", cache=tmp_path, now=now).cached is False


def test_the_default_cache_is_beside_the_helpers_other_caches(monkeypatch, tmp_path):
    monkeypatch.setenv("MLTP_CACHE_DIR", str(tmp_path / "c"))
    assert pricing.cache_dir() == tmp_path / "c" / "prices"
    monkeypatch.delenv("MLTP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert pricing.cache_dir() == tmp_path / "x" / "mltp" / "prices"


def test_a_price_that_cannot_be_had_is_unknown_with_the_reason(price_list, tmp_path, monkeypatch, moto_endpoint):
    clients = Clients(REGION)
    missing = pricing.lookup(clients, REGION, "ml.p3.2xlarge", "training", cache=tmp_path)
    assert missing == pricing.Price(None, "ml.p3.2xlarge (Training) is not in the price list of eu-west-1")
    # Hosting's price of the same instance is in the list: never taken for a training price.
    assert pricing.lookup(clients, "us-east-1", "ml.m5.large", "training", cache=tmp_path).usd_per_hour is None
    price_list.deny = True
    denied = pricing.lookup(Clients(REGION), REGION, "ml.m5.xlarge", "processing", cache=tmp_path)
    assert denied == pricing.Price(None, "no permission (pricing:GetProducts)")
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", "http://127.0.0.1:9")
    offline = pricing.lookup(Clients(REGION), REGION, "ml.m5.xlarge", "processing", cache=tmp_path)
    assert offline == pricing.Price(None, "the Price List API could not be reached")
    # An emulator without the Price List API (moto) is no price either, and no error.
    monkeypatch.delenv("AWS_ENDPOINT_URL_PRICING")
    emulated = pricing.lookup(Clients(REGION, moto_endpoint), REGION, "ml.m5.xlarge", "processing", cache=tmp_path)
    assert emulated.usd_per_hour is None and emulated.reason
    assert not (tmp_path / "prices.json").exists() or "processing" not in (tmp_path / "prices.json").read_text().lower()


def test_the_answer_is_checked_not_only_filtered():
    texts = RECORDED["PriceList"]
    assert pricing.hourly_price(texts, REGION, "ml.m5.xlarge", "Hosting") == 0.258
    assert pricing.hourly_price(texts, REGION, "ml.m5.xlarge", "Training") == 0.256
    assert pricing.hourly_price(texts, "us-east-1", "ml.m5.xlarge", "Training") == 0.23
    assert pricing.hourly_price(texts, REGION, "ml.m5.2xlarge", "Training") is None
    assert pricing.hourly_price(["not json", "{}"], REGION, "ml.m5.xlarge", "Training") is None
    # Another kind of use, or another product family with the same attributes, is not this price.
    hosting = json.loads(texts[0])
    hosting["product"]["attributes"]["platoinstancetype"] = "Hosting"
    assert pricing.hourly_price([json.dumps(hosting)], REGION, "ml.m5.xlarge", "Training") is None
    other_family = json.loads(texts[0])
    other_family["product"]["productFamily"] = "Storage"
    assert pricing.hourly_price([json.dumps(other_family)], REGION, "ml.m5.xlarge", "Training") is None


# --------------------------------------------------------------------------- a run's cost


@pytest.fixture
def jobs(moto_endpoint, monkeypatch):
    """A spot training job and a processing job in moto, with the billing fields SageMaker reports."""
    from moto.sagemaker.models import SageMakerModelBackend, sagemaker_backends

    for name, original in (("create_training_job", "_orig_ctj"), ("create_processing_job", "_orig_cpj")):
        if hasattr(SageMakerModelBackend, original):  # a local run's job hook: not wanted here
            monkeypatch.setattr(SageMakerModelBackend, name, getattr(SageMakerModelBackend, original))
    clients = Clients(REGION, moto_endpoint)
    suffix = datetime.now().strftime("%H%M%S%f")
    train, prep = f"costs-train-{suffix}", f"costs-prep-{suffix}"
    role = f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecution"
    clients.sagemaker.create_training_job(
        TrainingJobName=train, AlgorithmSpecification={"TrainingImage": "x", "TrainingInputMode": "File"},
        RoleArn=role, OutputDataConfig={"S3OutputPath": "s3://b/o"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400},
        EnableManagedSpotTraining=True, CheckpointConfig={"S3Uri": "s3://b/runs/r/checkpoints/"})
    clients.sagemaker.create_processing_job(
        ProcessingJobName=prep, AppSpecification={"ImageUri": "x"}, RoleArn=role,
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}})
    backend = sagemaker_backends[ACCOUNT][REGION]
    training = backend.training_jobs[train]
    training.billable_time_in_seconds, training.training_time_in_seconds = 1404, 3600
    processing = backend.processing_jobs[prep]
    started = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
    processing.processing_start_time, processing.processing_end_time = started, started + timedelta(minutes=15)
    processing.processing_resources = {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                         "VolumeSizeInGB": 30}}
    return clients, prep, train


def _steps(prep, train, evaluation_status=out.SUCCEEDED):
    return [out.StepRecord("Preprocessing", out.SUCCEEDED, prep, "processing"),
            out.StepRecord("Training", out.SUCCEEDED, train, "training"),
            out.StepRecord("Evaluation", evaluation_status, None if evaluation_status == "cached" else "costs-eval-x",
                           "processing"),
            out.StepRecord("Gate", out.SUCCEEDED)]


def test_each_job_costs_its_billable_time_times_instances_times_price(jobs, price_list, tmp_path):
    clients, prep, train = jobs
    cost = costs.collect(clients, REGION, _steps(prep, train, "cached"), cache=tmp_path)
    by_step = {job.step: job for job in cost.jobs}
    assert set(by_step) == {"Preprocessing", "Training", "Evaluation"}  # the Gate runs no job
    assert by_step["Training"].usd == pytest.approx(1404 / 3600 * 2 * 0.256)
    assert by_step["Training"].spot and by_step["Training"].spot_savings == pytest.approx(0.61)
    assert by_step["Preprocessing"].usd == pytest.approx(0.25 * 0.128)
    assert (by_step["Evaluation"].usd, by_step["Evaluation"].note) == (0.0, "cached")
    assert cost.total_usd == pytest.approx(1404 / 3600 * 2 * 0.256 + 0.25 * 0.128)
    assert cost.text() == "$0.23, spot saved 61%"
    assert costs.collect(clients, REGION, _steps(prep, train), local=True) is None


def test_an_unknown_price_makes_the_total_unknown_and_says_why(jobs, price_list, tmp_path):
    clients, prep, train = jobs
    price_list.deny = True
    cost = costs.collect(clients, REGION, _steps(prep, train, "cached"), cache=tmp_path)
    assert cost.total_usd is None
    assert cost.text() == "price unknown, spot saved 61%"
    assert cost.to_dict()["unknown"] == ["price unknown: no permission (pricing:GetProducts)"]
    # Refused once, not asked again for the other instance type (a cached price still counts).
    assert len(price_list.calls) == 1


def _outcome(cost):
    return out.Outcome(status=out.PASSED, model="fraud-detection", state_machine="fraud-detection", run_name="r-42",
                       execution_arn="arn:aws:states:eu-west-1:123456789012:execution:fraud-detection:r-42",
                       region=REGION, register=False, message="passed",
                       steps=[out.StepRecord("Training", out.SUCCEEDED, "t", "training")],
                       gate=[out.GateCheck("auc", ">= 0.9", 0.95, True)], cost=cost)


def test_the_cost_shows_in_every_report_and_the_build_description(jobs, price_list, tmp_path):
    from mltp import report

    clients, prep, train = jobs
    cost = costs.collect(clients, REGION, _steps(prep, train, "cached"), cache=tmp_path / "cache")
    result = _outcome(cost)
    paths = report.write(result, tmp_path / "report")
    summary = paths["summary.txt"].read_text()
    assert summary.rstrip("\n").endswith("; not registered (branch build) · $0.23, spot saved 61%"), summary
    data = json.loads(paths["report.json"].read_text())
    assert data["cost"]["total_usd"] == pytest.approx(cost.total_usd)
    assert data["cost"]["spot_savings"] == pytest.approx(0.61)
    assert [j["step"] for j in data["cost"]["jobs"]] == ["Preprocessing", "Training", "Evaluation"]
    markdown = paths["report.md"].read_text()
    assert "## Cost" in markdown and "**$0.23, spot saved 61%**" in markdown
    assert "| Training | 2 x ml.m5.xlarge | 23m 24s | $0.256/h | $0.20 | 61% |" in markdown
    assert "| Evaluation | - | - | - | $0.00 (cached) | - |" in markdown
    html = paths["report.html"].read_text()
    assert '<h2>Cost</h2>' in html and '<p id="cost"><b>$0.23, spot saved 61%</b></p>' in html
    assert "<td>$0.00 (cached)</td>" in html
    console = report.console_lines(result)
    assert "cost: $0.23, spot saved 61%" in console
    assert any(line.startswith("Training") and "$0.256/h" in line for line in console)


def test_a_local_run_shows_no_cost(tmp_path):
    from mltp import report

    result = _outcome(None)
    paths = report.write(result, tmp_path / "report")
    assert "$" not in paths["summary.txt"].read_text()
    assert json.loads(paths["report.json"].read_text())["cost"] is None
    assert "## Cost" not in paths["report.md"].read_text() and "<h2>Cost</h2>" not in paths["report.html"].read_text()
    assert not any(line.startswith("cost:") for line in report.console_lines(result))
