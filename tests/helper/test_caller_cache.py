"""Who the credentials belong to is asked of STS once per access key and
remembered (mltp/caller_cache.py): later processes with the same key skip the
call; another key, another endpoint or a damaged entry asks again; and
credentials refused since are still refused, by the first call that uses them.
STS and S3 answer over real HTTP from the stand-in server (stand_in.py)."""

import json
import os
import time

import pytest
from click.testing import CliRunner

from mltp import caller_cache
from mltp.aws import Clients
from mltp.cli import main
from stand_in import StandIn
from test_aws_errors import STS_OK

REGION = "eu-west-1"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
S3_EXPIRED = (400, {"Content-Type": "application/xml"}, b"""<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>""")


@pytest.fixture
def server(monkeypatch, tmp_path):
    monkeypatch.setenv("MLTP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "BRANCH_NAME", "CHANGE_ID", "BUILD_TAG", "MLTP_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    stand_in = StandIn(lambda method, path, headers: STS_OK if "GetCallerIdentity" in path else S3_EXPIRED)
    yield stand_in
    stand_in.close()


def sts_calls(server) -> int:
    return sum(1 for _, _, body, _ in server.requests if b"GetCallerIdentity" in body)


def test_sts_is_asked_once_per_key(server, monkeypatch):
    first = Clients(REGION, server.url)
    assert first.account_id() == "123456789012"
    assert first.caller_arn() == "arn:aws:iam::123456789012:user/jenkins"
    again = Clients(REGION, server.url)  # a later verb's process
    assert (again.account_id(), again.caller_arn()) == (first.account_id(), first.caller_arn())
    assert sts_calls(server) == 1
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAI44QH8DHBEXAMPLE")  # other credentials
    Clients(REGION, server.url).account_id()
    assert sts_calls(server) == 2
    other = StandIn(lambda method, path, headers: STS_OK)  # another endpoint
    try:
        Clients(REGION, other.url).account_id()
        assert sts_calls(other) == 1
    finally:
        other.close()


def test_the_entry_holds_no_key_and_no_secret(server, tmp_path):
    Clients(REGION, server.url).account_id()
    entries = list(caller_cache.folder().glob("*.json"))
    assert len(entries) == 1
    text = entries[0].read_text()
    assert KEY_ID not in text and SECRET not in text
    assert json.loads(text)["account"] == "123456789012"


def test_a_damaged_or_misfiled_entry_asks_again(server):
    Clients(REGION, server.url).account_id()
    (entry,) = caller_cache.folder().glob("*.json")
    entry.write_text('{"key": "')
    assert Clients(REGION, server.url).account_id() == "123456789012"
    assert sts_calls(server) == 2
    entry.write_text(json.dumps({"key": "0" * 64, "account": "999999999999", "caller": "x"}))
    assert Clients(REGION, server.url).account_id() == "123456789012"
    assert sts_calls(server) == 3


def test_the_local_emulator_is_not_remembered(server):
    clients = Clients(REGION, server.url)
    clients.local = True
    clients.account_id()
    assert not list(caller_cache.folder().glob("*.json"))


def test_credentials_refused_since_are_refused_by_the_first_call(server, example_repo, tmp_path):
    """The identity is remembered; the credentials expired since. The sync's
    listing is refused, with the credentials' message, and exit 5."""
    Clients(REGION, server.url).account_id()
    server.requests.clear()
    result = CliRunner().invoke(main, ["sync", "--no-preflight", str(example_repo), "--endpoint-url", server.url])
    assert result.exit_code == 5, result.output
    assert "AWS refused: ExpiredToken: the AWS credentials have expired; renew them" in result.stderr
    assert sts_calls(server) == 0
    assert [method for method, path, _, _ in server.requests if "list-type=2" in path] == ["GET"]


def test_entries_unused_for_a_week_are_removed_when_one_is_written(server):
    folder = caller_cache.folder()
    folder.mkdir(parents=True)
    old, recent = folder / ("a" * 64 + ".json"), folder / ("b" * 64 + ".json")
    for path in (old, recent):
        path.write_text("{}")
    week_ago = time.time() - 8 * 86400
    os.utime(old, (week_ago, week_ago))
    Clients(REGION, server.url).account_id()
    assert not old.exists() and recent.exists()
    assert len(list(folder.glob("*.json"))) == 2
