"""The one place that makes AWS clients, and turns AWS refusals into AwsRefused.

Region comes from --region or the config, the endpoint from --endpoint-url or
AWS_ENDPOINT_URL (an emulator), retries from botocore's adaptive mode (which
also rate-limits the client itself under throttling), and the user agent
names mltp so AWS-side logs show who called.
"""

import contextlib
import threading
from typing import Any, Dict, Iterator, List, Optional

import botocore.config
import botocore.exceptions

from . import __version__
from .errors import AwsRefused
from .redaction import redact

# Throttling during a long `wait` must not fail a run that is fine: adaptive
# retries back off and slow the client; 10 attempts span well over a minute.
RETRY_ATTEMPTS = 10
# GetCallerIdentity is cheap and needs no permission: if it fails twice, the
# credentials or the network are the problem, and waiting will not fix them.
STS_ATTEMPTS = 2

# The Price List API's region (pricing.py): it has endpoints in a few regions only.
PRICING_REGION = "us-east-1"

# Errors that mean "AWS said no" or "AWS could not be reached", as opposed to a
# bug in mltp: they map to exit code 5.
_UNREACHABLE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
)


_TRANSFER_METHODS = ("upload_file", "download_file", "copy", "upload_fileobj", "download_fileobj")


def _transfer_method(name: str):
    def method(self, *args, **kwargs):
        from boto3.s3 import inject  # boto3's managed transfers, imported by the first that is used

        return getattr(inject, name)(self, *args, **kwargs)

    method.__name__ = name
    return method


def _add_transfer_methods(class_attributes: Dict[str, Any], **kwargs) -> None:
    for name in _TRANSFER_METHODS:
        class_attributes.setdefault(name, _transfer_method(name))


class Session:
    """What mltp asks of a boto3 Session (clients, credentials), made from a
    botocore session. Importing boto3 costs every process about 0.03 s (it
    imports s3transfer's manager too) that only uploads and downloads need: the
    S3 clients get boto3's transfer methods (upload_file, download_file, ...)
    as they would from boto3, and those import it on first use. A boto3
    Session can stand in for this one (Clients(session=...))."""

    def __init__(self, botocore_session):
        self._session = botocore_session
        botocore_session.register("creating-client-class.s3", _add_transfer_methods)

    def client(self, service: str, **kwargs):
        return self._session.create_client(service, **kwargs)

    def get_credentials(self):
        return self._session.get_credentials()


class Clients:
    """Lazily created, thread-safe-to-share botocore clients for one region/endpoint."""

    def __init__(self, region: str, endpoint_url: Optional[str] = None, max_attempts: int = RETRY_ATTEMPTS,
                 session: Optional[Any] = None):
        self.region = region
        self.endpoint_url = endpoint_url
        if session is None:
            from .service_models import botocore_session  # parsed models from the cache

            session = Session(botocore_session())
        self._session = session
        self._config = botocore.config.Config(
            region_name=region,
            retries={"mode": "adaptive", "max_attempts": max_attempts},
            user_agent_extra=f"mltp/{__version__}",
            connect_timeout=10,
            read_timeout=70,
        )
        self._clients: Dict[str, Any] = {}
        self._lock = threading.Lock()
        # The local emulator's clients (local/session.py): a run there is billed nothing (costs.py).
        self.local = False
        # Who is calling, asked once per invocation: shared with with_attempts()'s clients.
        self._identity: Dict[str, str] = {}
        # What the run's own environment said that its report keeps (a local run's
        # framework versions, local/versions.py): `wait` adds them to the warnings.
        self.notes: List[str] = []

    def with_attempts(self, max_attempts: int) -> "Clients":
        """The same session, region, endpoint and caller, with fewer (or more)
        retries: the preflight asks once and moves on, without a second boto3
        session or a second STS lookup."""
        other = Clients(self.region, self.endpoint_url, max_attempts=max_attempts, session=self._session)
        other._identity = self._identity
        other.local = self.local
        return other

    def client(self, service: str):
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(
                    service, region_name=self.region, endpoint_url=self.endpoint_url, config=self._config
                )
            return self._clients[service]

    @property
    def s3(self):
        return self.client("s3")

    @property
    def sfn(self):
        return self.client("stepfunctions")

    @property
    def sagemaker(self):
        return self.client("sagemaker")

    @property
    def logs(self):
        return self.client("logs")

    @property
    def lambda_(self):
        return self.client("lambda")

    @property
    def iam(self):
        return self.client("iam")

    @property
    def events(self):
        return self.client("events")

    @property
    def sts(self):
        return self.client("sts")

    @property
    def kms(self):
        return self.client("kms")

    @property
    def quotas(self):
        return self.client("service-quotas")

    @property
    def pricing(self):
        """The Price List API (pricing.py): served from a few regions only, us-east-1
        among them, whatever the region priced; asked twice at most, briefly (a run's
        cost is never worth a stalled report). Its endpoint: AWS_ENDPOINT_URL_PRICING
        (botocore's variable for one service), else the clients' endpoint."""
        import os

        with self._lock:
            if "pricing" not in self._clients:
                self._clients["pricing"] = self._session.client(
                    "pricing", region_name=PRICING_REGION,
                    endpoint_url=os.environ.get("AWS_ENDPOINT_URL_PRICING") or self.endpoint_url,
                    config=botocore.config.Config(
                        region_name=PRICING_REGION, retries={"mode": "standard", "total_max_attempts": 2},
                        user_agent_extra=f"mltp/{__version__}", connect_timeout=5, read_timeout=15))
            return self._clients["pricing"]

    def account_id(self) -> str:
        """The caller's account, for ExpectedBucketOwner on every S3 call.

        Asked once, with few retries: when STS cannot answer, every later call
        would fail the same way (no credentials, expired ones, no network), and
        going on without ExpectedBucketOwner would silently drop the check that a
        bucket of that name in someone else's account is refused. So this fails
        fast (exit 5) and says why. The answer for an access key never changes,
        so it is remembered per key (caller_cache.py) and asked once per key."""
        with self._lock:
            if "account" not in self._identity:
                from . import caller_cache

                remembered = None if self.local else caller_cache.key(self._session, self.endpoint_url)
                known = caller_cache.read(remembered) if remembered else None
                if known is not None:
                    self._identity.update(known)
                    return self._identity["account"]
                sts = self._session.client(
                    "sts", region_name=self.region, endpoint_url=self.endpoint_url,
                    config=botocore.config.Config(
                        region_name=self.region, retries={"mode": "standard", "total_max_attempts": STS_ATTEMPTS},
                        user_agent_extra=f"mltp/{__version__}", connect_timeout=5, read_timeout=15),
                )
                with refused("identify the caller with", "STS GetCallerIdentity (needed for ExpectedBucketOwner)"):
                    identity = sts.get_caller_identity()
                self._identity.update(account=identity["Account"], caller=identity.get("Arn", ""))
                if remembered:
                    caller_cache.write(remembered, self._identity["account"], self._identity["caller"])
            return self._identity["account"]

    def caller_arn(self) -> str:
        """Who is calling (asked with the account, once): preflight checks what it may pass."""
        self.account_id()
        return self._identity["caller"]


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code", "")
    return ""


@contextlib.contextmanager
def refused(action: str, resource: str) -> Iterator[None]:
    """Wrap AWS calls: a refusal or an unreachable endpoint becomes AwsRefused
    (exit 5) naming the action and resource, instead of a traceback."""
    try:
        yield
    except botocore.exceptions.NoCredentialsError:
        raise AwsRefused(f"{action} {resource}: no AWS credentials found (set AWS_PROFILE or keys, or use the agent's "
                         f"role; or, with no AWS account, run it all on this machine: mltp run --local)")
    except botocore.exceptions.ClientError as exc:
        raise AwsRefused(redact(f"{action} {resource}: {explain(exc)}"))
    except _UNREACHABLE as exc:
        raise AwsRefused(redact(f"{action} {resource}: AWS could not be reached: {exc}"))
    except botocore.exceptions.BotoCoreError as exc:
        raise AwsRefused(redact(f"{action} {resource}: {exc}"))


_CREDENTIALS = {
    "ExpiredToken": "the AWS credentials have expired",
    "ExpiredTokenException": "the AWS credentials have expired",
    "RequestExpired": "the AWS credentials have expired (or the agent's clock is wrong)",
    "TokenRefreshRequired": "the AWS credentials have expired",
    "InvalidClientTokenId": "the AWS credentials are invalid (unknown access key id or session token)",
    "UnrecognizedClientException": "the AWS credentials are invalid (unknown access key id or session token)",
    "InvalidAccessKeyId": "the AWS credentials are invalid (unknown access key id)",
    "SignatureDoesNotMatch": "the AWS credentials are invalid (the secret key does not match the access key id)",
    "InvalidToken": "the AWS credentials are invalid (malformed session token)",
}


def explain(exc: botocore.exceptions.ClientError) -> str:
    """AWS's refusal as one line that says what to do about it."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "") or "Error")
    message = str(error.get("Message", "") or "")
    if code in _CREDENTIALS:
        return (f"AWS refused: {code}: {_CREDENTIALS[code]}; renew them (AWS_PROFILE, the agent's role or the "
                f"Jenkins credentials binding) and run the build again")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if exc.operation_name == "HeadObject" and (code == "400" or status == 400):
        return ("AWS refused: 400 Bad Request to a HEAD request, which carries no error details; the usual causes: "
                "expired or invalid credentials, a bucket in another region than aws.region, or a KMS key the "
                "caller may not use")
    if exc.operation_name == "HeadObject" and code == "403":
        return "AWS refused: 403 Forbidden (a HEAD request carries no details): the caller may not read this object or its bucket"
    return f"AWS refused: {code}: {message}".rstrip(": ")
