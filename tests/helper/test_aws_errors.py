"""AWS failures say what to do (issue 9, item 11) and never print a credential
(item 3). AWS's answers come over real HTTP from a small stand-in server that
replies exactly as AWS does for these faults (status, headers, XML body): moto
cannot expire a token or answer a HEAD with a bare 400."""

import time

import pytest
from click.testing import CliRunner

from mltp.aws import Clients, refused
from mltp.cli import main
from mltp.errors import AwsRefused
from mltp.redaction import redact

from stand_in import StandIn

STS_EXPIRED = (403, {"Content-Type": "text/xml"}, b"""<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<Error><Type>Sender</Type><Code>ExpiredToken</Code><Message>The security token included in the request is expired</Message></Error>
<RequestId>4c3f</RequestId></ErrorResponse>""")
STS_INVALID = (403, {"Content-Type": "text/xml"}, b"""<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error>
<RequestId>4c3f</RequestId></ErrorResponse>""")
STS_OK = (200, {"Content-Type": "text/xml"}, b"""<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/jenkins</Arn><UserId>AIDA</UserId>
<Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>""")
# What S3 answers for SignatureDoesNotMatch: the key id and the signature, verbatim.
S3_SIGNATURE = (403, {"Content-Type": "application/xml"}, b"""<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method. AWSAccessKeyId AKIAIOSFODNN7EXAMPLE Signature f2b1c0ffee0ddba11ab1e5f00dcafe0123456789abcdef0123456789abcdef01 Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261126/eu-west-1/s3/aws4_request</Message>
<AWSAccessKeyId>AKIAIOSFODNN7EXAMPLE</AWSAccessKeyId></Error>""")


@pytest.fixture
def stand_in():
    servers = []

    def make(route):
        server = StandIn(lambda method, path, headers: route(method, path))
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def creds(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    for var in ("AWS_PROFILE", "BRANCH_NAME", "CHANGE_ID", "BUILD_TAG", "MLTP_CONFIG"):
        monkeypatch.delenv(var, raising=False)


def sync(example_repo, url, tmp_path):
    return CliRunner().invoke(main, ["sync", str(example_repo), "--endpoint-url", url],
                              env={"MLTP_ERROR_FILE": str(tmp_path / "error.txt")})


@pytest.mark.parametrize("reply, meaning", [
    (STS_EXPIRED, "the AWS credentials have expired"),
    (STS_INVALID, "the AWS credentials are invalid (unknown access key id or session token)"),
])
def test_expired_or_invalid_credentials_say_so(example_repo, stand_in, creds, tmp_path, reply, meaning):
    server = stand_in(lambda method, path: reply)
    result = sync(example_repo, server.url, tmp_path)
    assert result.exit_code == 5
    code = "ExpiredToken" if reply is STS_EXPIRED else "InvalidClientTokenId"
    assert result.stderr == (
        f"mltp: identify the caller with STS GetCallerIdentity (needed for ExpectedBucketOwner): AWS refused: "
        f"{code}: {meaning}; renew them (AWS_PROFILE, the agent's role or the Jenkins credentials binding) "
        f"and run the build again\n")
    assert len(server.requests) == 1  # a credential refusal is not retried for 50 s


def test_sts_failure_fails_fast_instead_of_dropping_the_owner_check(example_repo, stand_in, creds, tmp_path):
    """STS answering 500s: two attempts, a few seconds, exit 5 saying why; no S3
    call is ever made without ExpectedBucketOwner."""
    server = stand_in(lambda method, path: (500, {"Content-Type": "text/xml"}, b"<ErrorResponse><Error>"
                                            b"<Code>InternalFailure</Code><Message>oops</Message></Error></ErrorResponse>"))
    began = time.monotonic()
    result = sync(example_repo, server.url, tmp_path)
    elapsed = time.monotonic() - began
    assert result.exit_code == 5
    assert "STS GetCallerIdentity (needed for ExpectedBucketOwner)" in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 10
    assert len(server.requests) == 2
    assert all("GetCallerIdentity" in body.decode() for _, _, body, _ in server.requests)


def test_bare_400_on_head_is_explained(stand_in, creds):
    server = stand_in(lambda method, path: STS_OK if method == "POST" else (400, {}, b""))
    clients = Clients("eu-west-1", server.url, max_attempts=1)
    with pytest.raises(AwsRefused) as info:
        with refused("check", "s3://bucket/key"):
            clients.s3.head_object(Bucket="mlops-artifacts", Key="key")
    assert info.value.message == (
        "check s3://bucket/key: AWS refused: 400 Bad Request to a HEAD request, which carries no error details; "
        "the usual causes: expired or invalid credentials, a bucket in another region than aws.region, "
        "or a KMS key the caller may not use")


def test_signature_errors_never_print_key_id_or_signature(example_repo, stand_in, creds, tmp_path):
    """S3's SignatureDoesNotMatch quotes the access key id and the signature:
    neither reaches stderr nor the error file Jenkins shows."""
    server = stand_in(lambda method, path: STS_OK if method == "POST" and "GetCallerIdentity" in path
                      else S3_SIGNATURE)
    result = sync(example_repo, server.url, tmp_path)
    assert result.exit_code == 5, result.stderr
    shown = result.stderr + (tmp_path / "error.txt").read_text()
    assert "SignatureDoesNotMatch" in shown
    for secret in ("AKIAIOSFODNN7EXAMPLE", "f2b1c0ffee0ddba11ab1e5f00dcafe0123456789abcdef0123456789abcdef01",
                   "Credential=AKIA", "wJalrXUtnFEMI"):
        assert secret not in shown


@pytest.mark.parametrize("text", [
    "Authorization: AWS4-HMAC-SHA256 Credential=ASIAXXXXXXXXXXXXXXXX/20261126/eu-west-1/s3/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "ab" * 32,
    "https://bucket.s3.amazonaws.com/key?X-Amz-Credential=AKIAABCDEFGHIJKLMNOP%2F2026&X-Amz-Signature=" + "cd" * 32,
    "x-amz-security-token: IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD",
])
def test_redact_removes_credentials(text):
    out = redact(text)
    for secret in ("ASIAXXXXXXXXXXXXXXXX", "AKIAABCDEFGHIJKLMNOP", "ab" * 32, "cd" * 32, "IQoJb3JpZ2luX2VjEJr"):
        assert secret not in out


def test_redact_keeps_labelled_digests_but_not_bare_or_signature_hex():
    """fetch-model's checksum message names two SHA-256 digests as sha256:<hex>:
    they stay readable; a bare 64-digit hex (a SigV4 signature) and a labelled
    signature are still redacted."""
    digest, signature = "0f" * 32, "ab" * 32
    out = redact(f"has sha256:{digest}, but x/1 was registered with sha256:{digest}; "
                 f"Signature={signature} and {signature}")
    assert out.count(f"sha256:{digest}") == 2
    assert signature not in out
