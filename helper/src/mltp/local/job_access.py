"""What a local job may call on the run's emulator: what the job role may on AWS.

On AWS a job runs as the SageMaker execution role, whose generated policy
(`mltp iam-policy --role sagemaker`) reaches S3, CloudWatch Logs and metrics
(and ECR, for the image); STS's GetCallerIdentity needs no permission. A
script cannot register a model, approve one or touch the state machine. Locally a job
signs its requests with its own key id (job_env.JOB_KEY_ID) and this guard,
a WSGI wrapper around the emulator's app, answers a request signed with it
for any other service with AccessDenied, in the shape the service's protocol
uses. mltp's own calls (and the Step Functions interpreter's) use other keys.

The emulator checks no signatures: the guard keeps a script written for
SageMaker from doing locally what its role could not do on AWS; it is no
defence against a script that signs with another key id on purpose (docs/trust.md).
"""

import json
import re
from typing import Callable, Iterable, Optional

# By signing name: S3, STS, CloudWatch Logs, CloudWatch metrics.
JOB_SERVICES = frozenset({"s3", "sts", "logs", "monitoring"})
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]*/[^/]*/([^/,\s]+)/")
_QUERY_CREDENTIAL = re.compile(r"(?:^|&)X-Amz-Credential=([^%&/]+)(?:/|%2F)[^%&/]*(?:/|%2F)[^%&/]*(?:/|%2F)([^%&/]+)",
                               re.I)


def signer(environ: dict) -> Optional[tuple]:
    """(key id, service) of a SigV4 request, from its Authorization header or
    a presigned URL's query; None when it is not signed that way."""
    found = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not found:
        found = _QUERY_CREDENTIAL.search(environ.get("QUERY_STRING", ""))
    return (found.group(1), found.group(2)) if found else None


def guard(app: Callable, job_key: str, allowed: Iterable[str] = JOB_SERVICES) -> Callable:
    allowed = frozenset(allowed)

    def guarded(environ: dict, start_response: Callable):
        signed = signer(environ)
        if signed and signed[0] == job_key and signed[1] not in allowed:
            return _denied(environ, start_response, signed[1])
        return app(environ, start_response)

    return guarded


def install(server, job_key: str) -> None:
    """Wraps a started ThreadedMotoServer's app (werkzeug's server hands each
    request to `server.app`)."""
    inner = server._server  # moto's werkzeug server: the app is looked up per request
    inner.app = guard(inner.app, job_key)


def _denied(environ: dict, start_response: Callable, service: str):
    message = (f"a local job may call S3, STS and CloudWatch only, as its role on AWS; {service} belongs to mltp "
               f"(docs/contract.md, 3.7)")
    if "json" in environ.get("CONTENT_TYPE", ""):
        body = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", "AccessDeniedException")]
    else:
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{message}</Message>"
                f"</Error></ErrorResponse>").encode()
        headers = [("Content-Type", "text/xml")]
    start_response("403 Forbidden", headers + [("Content-Length", str(len(body)))])
    return [body]
