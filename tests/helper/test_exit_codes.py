"""The exit codes of `mltp wait` and `mltp run`, through the CLI, against moto
(docs/contract.md, 4.1): 0 passed, 2 invalid input, 3 gate failed, 4 run failed, 5 AWS
refused or unreachable."""

import sys

import pytest
from click.testing import CliRunner

from mltp.cli import main
from test_wait import (ACCOUNT, REGION, Model, classic_sfn, fast_retries, pipeline_script,  # noqa: F401 (fixtures)
                       script_execution, unique)


@pytest.fixture
def model(example_repo, aws_env, classic_sfn) -> Model:
    return Model(example_repo, aws_env)


def cli(*args, env=None):
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def wait(model, ctx, *extra, **kwargs):
    return cli("wait", model.repo, "--run-name", ctx.run_name, "--endpoint-url", model.endpoint, *extra, **kwargs)


def test_passed_is_0(model):
    ctx, data, arn = model.start()
    package = model.register(ctx.run_name)
    model.put_evaluation(data, auc=0.95, false_positive_rate=0.01)
    result = wait(model, ctx)
    assert result.exit_code == 0, result.output
    assert f"model package: {package} (PendingManualApproval)" in result.output
    assert (ctx.report_dir / "summary.txt").read_text().startswith(f"{model.name} run {ctx.run_name}: PASSED auc=0.95")


def test_invalid_config_is_2_and_sends_nothing(model):
    (model.repo / "config.yaml").write_text((model.repo / "config.yaml").read_text().replace("version: 1", "version: 2"))
    for verb in ("wait", "run"):
        result = cli(verb, model.repo, "--endpoint-url", "http://127.0.0.1:9")  # nothing listens there
        assert result.exit_code == 2, (verb, result.output)
        assert "version" in result.output


def test_gate_failed_is_3_and_names_the_metric(model, tmp_path):
    ctx, data, arn = model.start()
    model.put_evaluation(data, auc=0.5, false_positive_rate=0.01)
    script_execution(arn, pipeline_script(lambda: 1e9, data, end="gate"))
    error_file = tmp_path / "error.txt"
    result = wait(model, ctx, env={"MLTP_ERROR_FILE": str(error_file)})
    assert result.exit_code == 3, result.output
    assert error_file.read_text() == "metric gate failed: auc = 0.5, needs >= 0.9\n"


def test_failed_run_is_4(model, monkeypatch):
    monkeypatch.setenv("SF_EXECUTION_HISTORY_TYPE", "FAILURE")
    ctx, data, arn = model.start()
    result = wait(model, ctx)
    assert result.exit_code == 4, result.output
    assert "run failed at A State" in result.output


def test_timeout_is_4_and_stops_the_run(model):
    ctx, data, arn = model.start()
    script_execution(arn, pipeline_script(lambda: 0, data, end="running"))
    result = wait(model, ctx, "--timeout", "0.01")  # 0.6 s of real polling
    assert result.exit_code == 4, result.output
    assert "timed out after 0.01 min" in result.output
    assert model.status(arn) == "ABORTED"


def test_missing_state_machine_is_5(model):
    result = cli("wait", model.repo, "--run-name", unique("run"), "--endpoint-url", model.endpoint)
    assert result.exit_code == 5, result.output
    assert "DescribeExecution" in result.output and "DoesNotExist" in result.output


def test_unreachable_endpoint_is_5(model, fast_retries):
    import socket

    with socket.socket() as sock:  # a port with nothing behind it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = cli("wait", model.repo, "--run-name", "r1", "--endpoint-url", f"http://127.0.0.1:{port}")
    assert result.exit_code == 5, result.output
    assert "could not be reached" in result.output


def test_run_composes_sync_deploy_start_and_wait(model):
    run = unique("run")
    ctx = model.context(run)
    from mltp import naming

    data = naming.execution_input(model.config, ctx.state_machine, run, "x", register=True)
    model.register(run)
    model.put_evaluation(data, auc=0.95, false_positive_rate=0.01)
    result = cli("run", model.repo, "--run-name", run, "--endpoint-url", model.endpoint)
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("ok:") < out.index("sync") < out.index("deploy") < out.index("start:") < out.index("PASSED")
    assert (ctx.report_dir / "report.json").is_file()


def test_run_no_wait_returns_after_start(model):
    run = unique("run")
    result = cli("run", model.repo, "--run-name", run, "--endpoint-url", model.endpoint, "--no-wait")
    assert result.exit_code == 0, result.output
    assert "start: started" in result.output and "PASSED" not in result.output
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{model.name}"
    executions = model.sfn.list_executions(stateMachineArn=machine)["executions"]
    assert [(e["name"], e["status"]) for e in executions] == [(run, "RUNNING")]


def test_run_local_without_its_support_is_2(model, monkeypatch):
    monkeypatch.setitem(sys.modules, "mltp.local", None)  # as if the local run were not installed
    result = cli("run", model.repo, "--local")
    assert result.exit_code == 2, result.output
    assert "--local needs" in result.output
