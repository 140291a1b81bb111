"""AWS console links for the report and the lines `wait` prints: only on AWS,
never against an emulator (--local)."""

from typing import Optional

from ..context import RunContext
from ..jobs import LOG_GROUPS


def _console(region: str) -> str:
    domain = "console.amazonaws.cn" if region.startswith("cn-") else "console.aws.amazon.com"
    return f"https://{region}.{domain}"


def job_link(region: str, kind: Optional[str], job: Optional[str]) -> Optional[str]:
    if not job or kind not in LOG_GROUPS:
        return None
    page = "jobs" if kind == "training" else "processing-jobs"
    return f"{_console(region)}/sagemaker/home?region={region}#/{page}/{job}"


def console_links(ctx: RunContext) -> bool:
    """AWS console links only point somewhere on AWS: not against an emulator (--local)."""
    return not ctx.endpoint_url


def job_log_link(region: str, kind: Optional[str], job: Optional[str]) -> Optional[str]:
    """The job's log stream(s) in SageMaker's log group (the report links them)."""
    if not job or kind not in LOG_GROUPS:
        return None
    return log_link(region, LOG_GROUPS[kind], f"{job}/")


def execution_link(region: str, arn: str) -> str:
    return f"{_console(region)}/states/home?region={region}#/v2/executions/details/{arn}"


def log_link(region: str, group: str, prefix: str) -> str:
    def esc(text: str) -> str:  # the console's own double escaping of log group paths
        return text.replace("$", "$2524").replace("/", "$252F").replace("=", "$253D")

    return (f"{_console(region)}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/"
            f"{esc(group)}$3FlogStreamNameFilter$3D{esc(prefix)}")
