"""Which IAM actions mltp's AWS calls need: the one table the repo keeps.

IAM's own service authorization data (what the IAM console shows: every action
with its resource types and condition keys) lists actions, not API operations.
Most operations are authorized by the action of the same name; this table holds
the exceptions, the extra actions some requests need (tags, logging), and what
each Step Functions service integration needs of the state machine's role, as
AWS documents it ("IAM policies for integrated services", Step Functions
Developer Guide). The tests check every action here against IAM's data
(shipped by the `parliament` package) and the generated policies against both.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

# botocore service name -> IAM service prefix, where they differ.
SERVICE_PREFIX = {"stepfunctions": "states", "service-quotas": "servicequotas"}

# Operations authorized by another action than their own name ( () = no permission needed).
RENAMED: Dict[Tuple[str, str], Tuple[str, ...]] = {
    ("s3", "HeadObject"): ("s3:GetObject",),
    ("s3", "HeadBucket"): ("s3:ListBucket",),
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "ListObjects"): ("s3:ListBucket",),
    ("s3", "DeleteObjects"): ("s3:DeleteObject",),  # checked for each key deleted
    ("s3", "CreateMultipartUpload"): ("s3:PutObject",),
    ("s3", "UploadPart"): ("s3:PutObject",),
    ("s3", "CompleteMultipartUpload"): ("s3:PutObject",),
    # A copy: PutObject on the copy (GetObject on its source, which CopySource names).
    ("s3", "CopyObject"): ("s3:PutObject",),
    ("s3", "UploadPartCopy"): ("s3:PutObject",),
    ("s3", "GetBucketNotificationConfiguration"): ("s3:GetBucketNotification",),
    ("s3", "PutBucketNotificationConfiguration"): ("s3:PutBucketNotification",),
    ("sts", "GetCallerIdentity"): (),  # any identity may ask who it is
}

# What CloudWatch Logs asks of whoever sets a state machine's logging
# configuration, and of the state machine's role (Step Functions Developer
# Guide, "IAM policies for logging to CloudWatch Logs"). None of these actions
# has a resource type: AWS allows nothing narrower than "*".
LOG_DELIVERY_ACTIONS = (
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
)

# Request members that need more than the operation's own action.
EXTRA_FOR_MEMBER: Dict[Tuple[str, str, str], Tuple[str, ...]] = {
    ("stepfunctions", "CreateStateMachine", "loggingConfiguration"): LOG_DELIVERY_ACTIONS,
    ("stepfunctions", "UpdateStateMachine", "loggingConfiguration"): LOG_DELIVERY_ACTIONS,
    ("stepfunctions", "CreateStateMachine", "tags"): ("states:TagResource",),
    ("stepfunctions", "CreateStateMachine", "roleArn"): ("iam:PassRole",),
    ("stepfunctions", "UpdateStateMachine", "roleArn"): ("iam:PassRole",),
    ("sagemaker", "CreateModelPackageGroup", "Tags"): ("sagemaker:AddTags",),
    ("lambda", "CreateFunction", "Role"): ("iam:PassRole",),
}


def actions_for(service: str, operation: str, params: Optional[dict] = None) -> Tuple[str, ...]:
    """The IAM actions one API call needs (its own, plus those its members add)."""
    key = (service, operation)
    own = RENAMED.get(key, (f"{SERVICE_PREFIX.get(service, service)}:{operation}",))
    extra = tuple(action for (svc, op, member), actions in EXTRA_FOR_MEMBER.items()
                  if (svc, op) == key and params and params.get(member) for action in actions)
    return tuple(dict.fromkeys(own + extra))


# --------------------------------------------------------------------------- Step Functions integrations

# The managed EventBridge rules through which `.sync` SageMaker tasks learn that a job ended.
EVENTS_RULE_ACTIONS = ("events:PutTargets", "events:PutRule", "events:DescribeRule")


@dataclass(frozen=True)
class Integration:
    """What a Task resource needs of the state machine's role.

    `actions` apply to the resource the task creates or reads; `events_rule`
    is the managed rule of a `.sync` job integration; `passes_role` means the
    task hands its RoleArn parameter to SageMaker; `tags_action` is needed when
    the task's parameters carry Tags; `source_actions` apply to the object its
    CopySource names (S3 CopyObject reads it)."""

    actions: Tuple[str, ...]
    events_rule: Optional[str] = None
    passes_role: bool = False
    tags_action: Optional[str] = None
    source_actions: Tuple[str, ...] = ()


INTEGRATIONS: Dict[str, Integration] = {
    "sagemaker:createProcessingJob.sync": Integration(
        ("sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob"),
        events_rule="StepFunctionsGetEventsForSageMakerProcessingJobsRule",
        passes_role=True,
        tags_action="sagemaker:AddTags",
    ),
    "sagemaker:createTrainingJob.sync": Integration(
        ("sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"),
        events_rule="StepFunctionsGetEventsForSageMakerTrainingJobsRule",
        passes_role=True,
        tags_action="sagemaker:AddTags",
    ),
    "aws-sdk:s3:getObject": Integration(("s3:GetObject",)),
    # CopyObject: PutObject on the copy, GetObject on its source (S3's "Copying objects").
    "aws-sdk:s3:copyObject": Integration(("s3:PutObject",), source_actions=("s3:GetObject",)),
    # No tags_action: a version in a group takes its group's tags (CreateModelPackage.Tags).
    "aws-sdk:sagemaker:createModelPackage": Integration(("sagemaker:CreateModelPackage",)),
}


def integration_of(resource: str) -> Optional[Integration]:
    """The integration of a Task's Resource ARN (arn:<partition>:states:::<integration>)."""
    parts = resource.split(":::", 1)
    return INTEGRATIONS.get(parts[1]) if len(parts) == 2 else None
