"""`mltp deploy`: create or update the model's state machine, and say which.

The definition is deterministic and holds nothing run-specific (that travels in
the execution input), so comparing it with what AWS has is exact: a build whose
config did not change makes no update call and reports "unchanged". Updating
in place keeps the ARN, so running executions finish on their old version.

The state machines of a model (one per branch) log to the model's CloudWatch
Logs group, which `deploy` also keeps: retention from the config and the saved
Logs Insights queries (`log_group`).
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import botocore.exceptions

from . import log_group, naming, runs
from .aws import Clients, error_code, refused
from .context import RunContext
from .errors import AwsRefused

LOG_LEVEL = log_group.LEVEL


@dataclass(frozen=True)
class DeployResult:
    outcome: str  # "created" | "updated" | "unchanged"
    arn: str
    name: str
    notifications: Tuple[Tuple[str, str], ...] = ()  # (rule, outcome), default branch only

    def summary(self) -> str:
        from .notifications import describe

        return "\n".join([f"deploy: {self.outcome} {self.arn}", *describe(self.notifications)])


def logging_configuration(log_arn: str) -> dict:
    return log_group.logging_configuration(log_arn)


def _logging_key(conf: Optional[dict]) -> tuple:
    conf = conf or {}
    destinations = sorted(
        d.get("cloudWatchLogsLogGroup", {}).get("logGroupArn", "") for d in conf.get("destinations", [])
    )
    return conf.get("level", "OFF"), bool(conf.get("includeExecutionData", False)), tuple(destinations)


def tags(ctx: RunContext) -> Dict[str, str]:
    out = dict(ctx.config.aws.tags)
    out["mltp:model"] = ctx.config.name
    out["mltp:branch"] = naming.tag_value(ctx.branch)
    return out


def _tag_list(values: Dict[str, str]) -> List[dict]:
    return [{"key": k, "value": v} for k, v in sorted(values.items())]


def ensure_model_package_group(ctx: RunContext, clients: Clients) -> bool:
    """The registry group must exist before the state machine's Register step
    calls createModelPackage. Only builds that register need it (branch builds
    never register), and it is looked up first, so later deploys create nothing.
    Returns True when it was created.

    The group carries the config's tags (aws.tags and mltp:model): CreateModelPackage
    documents that a version in a group uses its group's tags and takes none of its
    own, so this is where they go. A group created before a tag was added to the
    config gets the missing tags; tags others added are left alone."""
    if not ctx.register:
        return False
    group = ctx.config.registry.model_package_group
    sagemaker = clients.sagemaker
    wanted = {k: v for k, v in sorted(tags(ctx).items()) if k != "mltp:branch"}
    with refused("model package group", group):
        try:
            current = sagemaker.describe_model_package_group(ModelPackageGroupName=group)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in ("ValidationException", "ResourceNotFound"):
                raise
        else:
            _add_missing_tags(sagemaker, current["ModelPackageGroupArn"], wanted)
            return False
        # Line breaks and tabs folded: ModelPackageGroupDescription takes no control characters.
        description = " ".join((ctx.config.description or f"Models of {ctx.config.name}, registered by mltp").split())
        group_tags = [{"Key": k, "Value": v} for k, v in wanted.items()]
        try:
            sagemaker.create_model_package_group(
                ModelPackageGroupName=group, ModelPackageGroupDescription=description[:1024], Tags=group_tags,
            )
        except botocore.exceptions.ClientError as exc:
            if "already exists" not in str(exc).lower():  # a concurrent build created it
                raise
    return True


def _add_missing_tags(sagemaker, arn: str, wanted: Dict[str, str]) -> None:
    """Tag the group with what the config wants and it lacks (one ListTags page
    holds them all: a resource has at most 50 tags)."""
    present = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=arn, MaxResults=100).get("Tags", [])}
    missing = [{"Key": k, "Value": v} for k, v in wanted.items() if present.get(k) != v]
    if missing:
        sagemaker.add_tags(ResourceArn=arn, Tags=missing)


def deploy(ctx: RunContext, clients: Clients, definition: Optional[str] = None) -> DeployResult:
    """Create the state machine, or update it when definition, role, logging or
    tags differ from config; never touches what already matches. On the default
    branch, also make sure the model package group exists and the notification
    rules are what `notify` says (a branch's config must not redirect them)."""
    result = _deploy_state_machine(ctx, clients, definition)
    if not ctx.register:
        return result
    from . import notifications

    done = notifications.apply(ctx.config, clients, ctx.region)
    return DeployResult(result.outcome, result.arn, result.name, tuple(done))


def _deploy_state_machine(ctx: RunContext, clients: Clients, definition: Optional[str]) -> DeployResult:
    ensure_model_package_group(ctx, clients)
    if definition is None:
        from . import definition as definition_mod

        # a branch's jobs run as aws.branch_sagemaker_role_arn when it is set
        definition = definition_mod.render(naming.definition_config(ctx.config, ctx.state_machine))
    role = ctx.config.aws.states_role_arn
    logging = logging_configuration(log_group.ensure(ctx.config, clients).arn)
    wanted_tags = tags(ctx)
    arn = runs.state_machine_arn(ctx, clients)
    sfn = clients.sfn
    with refused("deploy state machine", ctx.state_machine):
        current = runs.describe_state_machine(clients, arn)
        if current is None:
            try:
                created = sfn.create_state_machine(
                    name=ctx.state_machine, definition=definition, roleArn=role,
                    type="STANDARD", loggingConfiguration=logging, tags=_tag_list(wanted_tags),
                )
                return DeployResult("created", created["stateMachineArn"], ctx.state_machine)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "StateMachineAlreadyExists":  # a concurrent build created it
                    raise
            current = runs.describe_state_machine(clients, arn)
            if current is None:
                raise AwsRefused(f"deploy state machine {ctx.state_machine}: exists but cannot be described")
        arn = current["stateMachineArn"]
        changed = False
        if (
            current.get("definition") != definition
            or current.get("roleArn") != role
            or _logging_key(current.get("loggingConfiguration")) != _logging_key(logging)
        ):
            sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role,
                                     loggingConfiguration=logging)
            changed = True
        present = {t["key"]: t["value"] for t in sfn.list_tags_for_resource(resourceArn=arn).get("tags", [])}
        missing = {k: v for k, v in wanted_tags.items() if present.get(k) != v}
        if missing:  # tags others added (cost allocation, policies) are left alone
            sfn.tag_resource(resourceArn=arn, tags=_tag_list(missing))
            changed = True
    return DeployResult("updated" if changed else "unchanged", arn, ctx.state_machine)
