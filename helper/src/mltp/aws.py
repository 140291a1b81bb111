"""The one place that makes AWS clients, and turns AWS refusals into AwsRefused.

Region comes from --region or the config, the endpoint from --endpoint-url or
AWS_ENDPOINT_URL (an emulator), retries from botocore's adaptive mode (which
also rate-limits the client itself under throttling), and the user agent
names mltp so AWS-side logs show who called.
"""

import contextlib
import threading
from typing import Any, Dict, Iterator, Optional

import boto3
import botocore.config
import botocore.exceptions

from . import __version__
from .errors import AwsRefused

# Throttling during a long `wait` must not fail a run that is fine: adaptive
# retries back off and slow the client; 10 attempts span well over a minute.
RETRY_ATTEMPTS = 10

# Errors that mean "AWS said no" or "AWS could not be reached", as opposed to a
# bug in mltp: they map to exit code 5.
_UNREACHABLE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
)


class Clients:
    """Lazily created, thread-safe-to-share boto3 clients for one region/endpoint."""

    def __init__(self, region: str, endpoint_url: Optional[str] = None, max_attempts: int = RETRY_ATTEMPTS,
                 session: Optional[boto3.session.Session] = None):
        self.region = region
        self.endpoint_url = endpoint_url
        self._session = session or boto3.session.Session()
        self._config = botocore.config.Config(
            region_name=region,
            retries={"mode": "adaptive", "max_attempts": max_attempts},
            user_agent_extra=f"mltp/{__version__}",
            connect_timeout=10,
            read_timeout=70,
        )
        self._clients: Dict[str, Any] = {}
        self._lock = threading.Lock()
        self._account: Optional[str] = None

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

    def account_id(self) -> Optional[str]:
        """The caller's account, for ExpectedBucketOwner; None when STS will not say."""
        if self._account is None:
            try:
                self._account = self.sts.get_caller_identity()["Account"]
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                self._account = ""
        return self._account or None


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
        raise AwsRefused(f"{action} {resource}: no AWS credentials found (set AWS_PROFILE or keys, or use the agent's role)")
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsRefused(f"{action} {resource}: AWS refused: {error.get('Code', 'Error')}: {error.get('Message', '')}".rstrip(": "))
    except _UNREACHABLE as exc:
        raise AwsRefused(f"{action} {resource}: AWS could not be reached: {exc}")
    except botocore.exceptions.BotoCoreError as exc:
        raise AwsRefused(f"{action} {resource}: {exc}")
