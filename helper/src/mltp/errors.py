"""Error types. Each maps to one exit code of the contract, so the Jenkins step
can turn the helper's exit status into a build result without parsing text."""

from typing import Iterable, List


class MltpError(Exception):
    """Base class: a failure the user should see as one or more plain lines."""

    exit_code = 1

    def __init__(self, message: str, details: Iterable[str] = ()):
        super().__init__(message)
        self.message = message
        self.details: List[str] = list(details)

    def lines(self) -> List[str]:
        return [self.message, *self.details]


class InvalidInput(MltpError):
    """Config, model repo or arguments are wrong; nothing was sent to AWS (exit 2)."""

    exit_code = 2


class GateFailed(MltpError):
    """The run finished but missed its metric gate (exit 3)."""

    exit_code = 3


class RunFailed(MltpError):
    """A step failed, timed out or was stopped (exit 4)."""

    exit_code = 4


class AwsRefused(MltpError):
    """AWS refused the call or could not be reached, retries included (exit 5)."""

    exit_code = 5


class ChecksumMismatch(AwsRefused):
    """A fetched model does not match the SHA-256 recorded at registration (exit 5)."""
