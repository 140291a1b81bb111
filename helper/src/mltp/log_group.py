"""The model's CloudWatch Logs group: created by `deploy`, with its retention
and its saved Logs Insights queries.

One group per model, shared by its branches' state machines:
`/aws/vendedlogs/states/mltp/<name>`. The /aws/vendedlogs/ prefix matters:
Step Functions then delivers logs without a resource policy on the group, and
per-group policies would hit CloudWatch Logs' policy size limit after a few
dozen models. The state machines log every event (level ALL) so the saved
queries can show each step's duration and the gate's outcome; execution data
(inputs, outputs) stays out of the logs.

SageMaker writes the jobs' own output to its groups
(/aws/sagemaker/ProcessingJobs, /aws/sagemaker/TrainingJobs), one stream per
job: `mltp logs` merges those with the run's events.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import botocore.exceptions

from .aws import Clients, error_code, refused
from .config import Config
from .errors import AwsRefused

PREFIX = "/aws/vendedlogs/states/mltp"
LEVEL = "ALL"

# Saved queries (Logs Insights), over the Step Functions log event fields:
# type, execution_arn, event_timestamp, details.name (the state), details.error.
QUERIES: Dict[str, str] = {
    "failures-by-step": "\n".join([
        "fields @timestamp, execution_arn, type, details.name, details.resource, details.error",
        "| filter type like /Failed|TimedOut|Aborted/",
        "| stats count(*) as failures by type, details.resource, details.error",
        "| sort failures desc",
    ]),
    "duration-per-step": "\n".join([
        "filter type like /StateEntered|StateExited/",
        "| stats min(event_timestamp) as entered, max(event_timestamp) as exited by execution_arn, details.name",
        "| fields details.name as step, (exited - entered) / 1000 as seconds, execution_arn",
        "| sort execution_arn desc",
    ]),
    "gate-results": "\n".join([
        "filter (type = 'FailStateEntered' and details.name = 'MetricGateFailed')"
        " or (type = 'ChoiceStateEntered' and details.name = 'ShouldRegister')",
        "| fields @timestamp, execution_arn, replace(replace(details.name, 'ShouldRegister', 'passed'),"
        " 'MetricGateFailed', 'missed') as gate",
        "| sort @timestamp desc",
    ]),
}


def group_name(config: Config) -> str:
    return f"{PREFIX}/{config.name}"


def query_name(config: Config, key: str) -> str:
    return f"mltp/{config.name}/{key}"


@dataclass
class GroupResult:
    name: str
    arn: str  # with the ':*' Step Functions expects
    changes: List[str] = field(default_factory=list)


def _find(clients: Clients, name: str) -> Optional[dict]:
    pages = clients.logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name)
    for page in pages:
        for group in page.get("logGroups", []):
            if group.get("logGroupName") == name:
                return group
    return None


def _arn(group: dict) -> str:
    arn = group["arn"]
    return arn if arn.endswith(":*") else arn + ":*"


def ensure(config: Config, clients: Clients) -> GroupResult:
    """Group, retention and saved queries as the config says; looked up first,
    so a deploy that changes nothing makes no write call."""
    name = group_name(config)
    logs = clients.logs
    changes: List[str] = []
    with refused("log group", name):
        group = _find(clients, name)
        if group is None:
            try:
                logs.create_log_group(logGroupName=name)
                changes.append("created")
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "ResourceAlreadyExistsException":  # another build won the race
                    raise
            group = _find(clients, name)
            if group is None:
                raise AwsRefused(f"log group {name}: created but not found afterwards")
        if group.get("retentionInDays") != config.logs.retention_days:
            logs.put_retention_policy(logGroupName=name, retentionInDays=config.logs.retention_days)
            changes.append(f"retention {config.logs.retention_days} days")
    changes += ensure_queries(config, clients, name)
    return GroupResult(name, _arn(group), changes)


def ensure_queries(config: Config, clients: Clients, group: str) -> List[str]:
    logs = clients.logs
    changes = []
    with refused("saved queries", f"mltp/{config.name}/"):
        found = logs.describe_query_definitions(queryDefinitionNamePrefix=f"mltp/{config.name}/",
                                                maxResults=1000).get("queryDefinitions", [])
        by_name = {q["name"]: q for q in found}
        for key, text in QUERIES.items():
            name = query_name(config, key)
            current = by_name.get(name)
            if current and current.get("queryString") == text and current.get("logGroupNames") == [group]:
                continue
            kwargs = {"name": name, "queryString": text, "logGroupNames": [group]}
            if current:
                kwargs["queryDefinitionId"] = current["queryDefinitionId"]
            logs.put_query_definition(**kwargs)
            changes.append(f"query {name}")
    return changes


def logging_configuration(log_arn: str) -> dict:
    return {
        "level": LEVEL,
        "includeExecutionData": False,
        "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": log_arn}}],
    }
