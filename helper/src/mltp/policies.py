"""Least-privilege IAM policies of the four roles mltp involves, from config.yaml.

- jenkins: the identity the build runs as (sync, deploy, start, wait, stop);
- states: `aws.states_role_arn`, which the state machine runs as;
- sagemaker: `aws.sagemaker_role_arn`, which the jobs run as;
- branch-sagemaker: `aws.branch_sagemaker_role_arn`, which the jobs of branch and
  pull request builds run as when it is set;
- trigger: the retraining trigger's Lambda function.

Who may write where in S3 is the trust boundary between the default branch and
the others (docs/trust.md): the default branch's jobs write `runs/*`, a branch's
`branches/*/runs/*` (naming.run_prefix); with a branch role, neither role reaches
the other's. Managed spot training's checkpoints live under the run
(`.../runs/<run>/checkpoints/`, spot.py), so the same statements cover them for
the role the run's jobs use. No job role writes `registry/*`: the states role copies a registered
run's artifacts there (naming.registry_prefix), and only from `runs/*`.

Every resource is scoped to the model's names (`<name>`, `<name>--<branch>`,
job names `<name>-prep|train|eval-<id>`) and its S3 prefix `<prefix>/<name>/`.
A statement uses Resource "*" only for actions IAM's service authorization data
gives no resource type (AWS allows nothing narrower); it then carries a note
saying so, which the output formats show as a comment.

Features change what the roles need. KMS, the preprocessing inputs and the
training channels with an s3:// source come from
config.yaml; features built outside config.yaml (approval, fetch, trigger, logs, prune)
are named with `--feature`, because a role must hold their permissions before
they are first used.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Tuple

from . import iam_actions, log_group
from .config import Config
from .jobs import LOG_GROUPS
from .naming import BRANCH_SEPARATOR, JOB_ABBREV

ROLES = ("jenkins", "states", "sagemaker", "branch-sagemaker", "trigger")
FEATURES = ("approval", "fetch", "trigger", "logs", "prune", "resume")

JOB_LOG_GROUPS = LOG_GROUPS  # SageMaker's job log groups (jobs.py)
TRUSTED_SERVICE = {"jenkins": "ec2.amazonaws.com", "states": "states.amazonaws.com",
                   "sagemaker": "sagemaker.amazonaws.com", "branch-sagemaker": "sagemaker.amazonaws.com",
                   "trigger": "lambda.amazonaws.com"}

ANY_RESOURCE = "AWS allows nothing narrower than \"*\" for {what}: IAM lists no resource type for it"


@dataclass(frozen=True)
class Statement:
    sid: str
    actions: Tuple[str, ...]
    resources: Tuple[str, ...]
    condition: Optional[Dict[str, Dict[str, Any]]] = None
    note: str = ""  # why the resource is "*"; shown as a comment

    def document(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"Sid": self.sid, "Effect": "Allow",
                               "Action": list(self.actions) if len(self.actions) > 1 else self.actions[0],
                               "Resource": list(self.resources) if len(self.resources) > 1 else self.resources[0]}
        if self.condition:
            out["Condition"] = self.condition
        return out


@dataclass(frozen=True)
class Policy:
    role: str
    model: str
    statements: Tuple[Statement, ...]
    role_arn: Optional[str] = None
    notes: Tuple[str, ...] = field(default=())

    def document(self) -> Dict[str, Any]:
        return {"Version": "2012-10-17", "Statement": [s.document() for s in self.statements]}


class Arns:
    """The ARNs of one model's resources, in the partition, region and account of its roles."""

    def __init__(self, config: Config):
        self.config = config
        role = config.aws.states_role_arn.split(":")
        self.partition, self.account = role[1], role[4]
        self.region = config.aws.region
        self.bucket = config.aws.bucket
        self.name = config.name
        self.model_prefix = f"{config.aws.prefix}/{config.name}/"

    def _arn(self, service: str, rest: str, region: bool = True, account: bool = True) -> str:
        return (f"arn:{self.partition}:{service}:{self.region if region else ''}:"
                f"{self.account if account else ''}:{rest}")

    def s3_bucket(self, bucket: Optional[str] = None) -> str:
        return f"arn:{self.partition}:s3:::{bucket or self.bucket}"

    def s3_objects(self, key_pattern: str, bucket: Optional[str] = None) -> str:
        return f"{self.s3_bucket(bucket)}/{key_pattern}"

    def state_machines(self) -> Tuple[str, ...]:
        """The default branch's `<name>` and every branch's `<name>--<slug>`, never another model's."""
        return (self._arn("states", f"stateMachine:{self.name}"),
                self._arn("states", f"stateMachine:{self.name}{BRANCH_SEPARATOR}*"))

    def executions(self) -> Tuple[str, ...]:
        return (self._arn("states", f"execution:{self.name}:*"),
                self._arn("states", f"execution:{self.name}{BRANCH_SEPARATOR}*:*"))

    def jobs(self, kind: str) -> Tuple[str, ...]:
        """SageMaker job ARNs (names are lower-case in ARNs; naming.job_name's shape)."""
        roles = ("training",) if kind == "training" else ("preprocessing", "evaluation")
        resource = "training-job" if kind == "training" else "processing-job"
        return tuple(self._arn("sagemaker", f"{resource}/{self.name}-{JOB_ABBREV[r]}-*") for r in roles)

    def job_log_streams(self, kind: str) -> Tuple[str, ...]:
        roles = ("training",) if kind == "training" else ("preprocessing", "evaluation")
        group = JOB_LOG_GROUPS[kind]
        return tuple(self._arn("logs", f"log-group:{group}:log-stream:{self.name}-{JOB_ABBREV[r]}-*") for r in roles)

    def log_group(self, name: str) -> Tuple[str, ...]:
        """Both forms IAM meets: the group's ARN, and its ARN with ':*' (as APIs report it)."""
        return (self._arn("logs", f"log-group:{name}"), self._arn("logs", f"log-group:{name}:*"))

    def log_streams(self, group: str, stream: str = "*") -> str:
        return self._arn("logs", f"log-group:{group}:log-stream:{stream}")

    @property
    def group_name(self) -> str:
        return self.config.registry.model_package_group.lower()  # SageMaker lower-cases names in ARNs

    def package_group(self) -> str:
        return self._arn("sagemaker", f"model-package-group/{self.group_name}")

    def packages(self) -> str:
        return self._arn("sagemaker", f"model-package/{self.group_name}/*")

    def events_rule(self, rule: str) -> str:
        return self._arn("events", f"rule/{rule}")

    def trigger_function(self) -> str:
        return self._arn("lambda", f"function:{trigger_function_name(self.config)}")

    def trigger_role(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/{trigger_function_name(self.config)}"

    def kms(self) -> Optional[Tuple[str, Optional[Dict[str, Any]]]]:
        """(resource, condition) for the configured key: a key by id or ARN is
        named; an alias is matched on the key it points to (kms:ResourceAliases),
        because key policies and IAM evaluate the key, never the alias."""
        key = self.config.aws.kms_key_id
        if not key:
            return None
        if key.startswith("arn:") and ":key/" in key:
            return key, None
        if key.startswith("arn:") or key.startswith("alias/"):
            alias = key[key.index("alias/"):]
            region = key.split(":")[3] if key.startswith("arn:") else self.region
            account = key.split(":")[4] if key.startswith("arn:") else self.account
            return (f"arn:{self.partition}:kms:{region}:{account}:key/*",
                    {"ForAnyValue:StringEquals": {"kms:ResourceAliases": [alias]}})
        return self._arn("kms", f"key/{key}"), None


def trigger_function_name(config: Config) -> str:
    return f"mltp-trigger-{config.name}"


def _any(sid: str, actions: Iterable[str], what: str, condition: Optional[dict] = None, note: str = "") -> Statement:
    return Statement(sid, tuple(actions), ("*",), condition, note or ANY_RESOURCE.format(what=what))


def _kms(arns: Arns, sid: str, actions: Tuple[str, ...]) -> List[Statement]:
    found = arns.kms()
    if not found:
        return []
    resource, condition = found
    return [Statement(sid, actions, (resource,), condition)]


def _pass_role(sid: str, role_arn: str, service: str) -> Statement:
    return Statement(sid, ("iam:PassRole",), (role_arn,), {"StringEquals": {"iam:PassedToService": service}})


# The S3 key patterns of the layout (naming.py), under <prefix>/<name>/.
DEFAULT_RUNS = "runs/*"
BRANCH_RUNS = "branches/*/runs/*"
BRANCH_CODE = "code/branches/*"
REGISTRY = "registry/*"


def _evaluation_objects(arns: Arns) -> Tuple[str, ...]:
    """evaluation.json of every run, the default branch's and the branches'."""
    return (arns.s3_objects(f"{arns.model_prefix}runs/*/evaluation/evaluation.json"),
            arns.s3_objects(f"{arns.model_prefix}branches/*/runs/*/evaluation/evaluation.json"))


def _job_roles(config: Config) -> Tuple[str, ...]:
    """The roles the jobs run as: the default one, and the branch one when set."""
    roles = [config.aws.sagemaker_role_arn]
    if config.aws.branch_sagemaker_role_arn and config.aws.branch_sagemaker_role_arn not in roles:
        roles.append(config.aws.branch_sagemaker_role_arn)
    return tuple(roles)


# --------------------------------------------------------------------------- the roles


def _jenkins(arns: Arns, features: FrozenSet[str], identity_arn: Optional[str] = None) -> List[Statement]:
    cfg = arns.config
    roles = (cfg.aws.states_role_arn,) + _job_roles(cfg)
    out = [
        # sync uploads, verifies and repairs code prefixes (a repair deletes what differs)
        Statement("UploadCode", ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"),
                  (arns.s3_objects(f"{arns.model_prefix}code/*"),)),
        Statement("VerifyCode", ("s3:ListBucket",), (arns.s3_bucket(),),
                  {"StringLike": {"s3:prefix": [f"{arns.model_prefix}code/*"]}}),
        # wait: the gate table from the run's evaluation.json, or the registry copy a
        # registered version names; the registered model.tar.gz, hashed for fetch-model
        Statement("ReadEvaluation", ("s3:GetObject",),
                  _evaluation_objects(arns) + (arns.s3_objects(f"{arns.model_prefix}registry/*/evaluation.json"),)),
        Statement("HashRegisteredModel", ("s3:GetObject",),
                  (arns.s3_objects(f"{arns.model_prefix}registry/*/model.tar.gz"),)),
        Statement("StateMachines",
                  ("states:CreateStateMachine", "states:UpdateStateMachine", "states:DescribeStateMachine",
                   "states:TagResource", "states:ListTagsForResource", "states:StartExecution"),
                  arns.state_machines()),
        Statement("Executions", ("states:DescribeExecution", "states:StopExecution", "states:GetExecutionHistory"),
                  arns.executions()),
        _pass_role("PassStatesRole", cfg.aws.states_role_arn, "states.amazonaws.com"),
        # deploy: the model's log group with its retention and saved Logs Insights queries
        Statement("ModelLogGroup", ("logs:CreateLogGroup", "logs:PutRetentionPolicy"),
                  arns.log_group(log_group.group_name(cfg))),
        _any("LogQueries", ("logs:PutQueryDefinition", "logs:DescribeQueryDefinitions", "logs:DeleteQueryDefinition"),
             "saved Logs Insights queries"),
        # wait: a passed default-branch run's input, which retraining starts from
        Statement("RetrainPointer", ("s3:PutObject",), (arns.s3_objects(f"{arns.model_prefix}trigger/last-good.json"),)),
        _any("StateMachineLogDelivery", iam_actions.LOG_DELIVERY_ACTIONS,
             "log deliveries, resource policies and listing log groups"),
        Statement("ReadJobs", ("sagemaker:DescribeProcessingJob",), arns.jobs("processing")),
        Statement("ReadTrainingJob", ("sagemaker:DescribeTrainingJob",), arns.jobs("training")),
        Statement("JobLogStreams", ("logs:DescribeLogStreams",),
                  tuple(a for kind in ("processing", "training") for a in arns.log_group(JOB_LOG_GROUPS[kind]))),
        Statement("JobLogEvents", ("logs:GetLogEvents",),
                  arns.job_log_streams("processing") + arns.job_log_streams("training")),
        Statement("ModelPackageGroup",
                  ("sagemaker:DescribeModelPackageGroup", "sagemaker:CreateModelPackageGroup", "sagemaker:AddTags",
                   "sagemaker:ListTags"),
                  (arns.package_group(),)),
        # wait records the registered model's SHA-256 on its version (fetch-model verifies it);
        # approve and reject record their decision with the same call
        Statement("ModelPackages", ("sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage"),
                  (arns.packages(),)),
        _any("ListModelPackages", ("sagemaker:ListModelPackages",), "", note=(
            "AWS allows nothing narrower than \"*\" for listing model packages: the call names a group, "
            "which is not among the resource types IAM lists for it")),
        # mltp preflight (read-only)
        Statement("PreflightBucket", ("s3:GetBucketLocation",), (arns.s3_bucket(),)),
        Statement("PreflightRoles", ("iam:GetRole", "iam:SimulatePrincipalPolicy"), roles),
        _any("PreflightQuotas", ("servicequotas:ListServiceQuotas", "servicequotas:ListAWSDefaultServiceQuotas"),
             "reading Service Quotas"),
        # wait: the on-demand price of the jobs' instance types, for the run's cost (pricing.py);
        # optional: without it the report says "price unknown"
        _any("PriceList", ("pricing:GetProducts",), "the Price List API"),
    ]
    # deploy (default branch) and trigger install keep the model's notification rules
    # (notifications.py), found by one listing, and remove them once `notify` is gone:
    # so these are granted with or without `notify`; preflight reads the topic's policy
    from .notifications import rule_names

    out += [
        _any("NotifyListRules", ("events:ListRules",), "listing EventBridge rules"),
        Statement("NotifyRules", ("events:PutRule", "events:DeleteRule", "events:PutTargets",
                                  "events:RemoveTargets", "events:ListTargetsByRule"),
                  tuple(arns.events_rule(name) for name in rule_names(cfg.name))),
    ]
    if cfg.notify is not None:
        out.append(Statement("NotifyTopic", ("sns:GetTopicAttributes",), (cfg.notify.topic_arn,)))
    if any(step.cache for step in cfg.steps.all()):
        out += _step_cache(arns)
    if identity_arn:  # lets preflight ask the simulator whether Jenkins itself may pass the states role
        out.append(Statement("PreflightSelf", ("iam:SimulatePrincipalPolicy",), (identity_arn,)))
    # "fetch": fetch-model reads versions (ModelPackages) and downloads the registry copy a
    # version names, which wait already hashes (HashRegisteredModel): nothing to add.
    if "trigger" in features:
        out += [
            Statement("TriggerNotifications", ("s3:GetBucketNotification", "s3:PutBucketNotification"),
                      (arns.s3_bucket(),)),  # the notification configuration is one per bucket
            Statement("TriggerFunction",
                      ("lambda:CreateFunction", "lambda:UpdateFunctionCode", "lambda:GetFunction",
                       "lambda:AddPermission", "lambda:RemovePermission", "lambda:DeleteFunction"),
                      (arns.trigger_function(),)),
            _pass_role("PassTriggerRole", arns.trigger_role(), "lambda.amazonaws.com"),
        ]
    if "logs" in features:
        # mltp logs [--follow] [--export]: the model's group and its jobs' streams, read or exported
        group = log_group.group_name(cfg)
        job_groups = tuple(a for kind in ("processing", "training") for a in arns.log_group(JOB_LOG_GROUPS[kind]))
        out += [
            Statement("ReadModelLogs", ("logs:FilterLogEvents", "logs:CreateExportTask"),
                      arns.log_group(group) + job_groups),
            Statement("ModelLogEvents", ("logs:GetLogEvents",), (arns.log_streams(group),)),
            _any("ExportTasks", ("logs:DescribeExportTasks",), "reading export tasks"),
            Statement("ListRuns", ("states:ListExecutions",), arns.state_machines()),
        ]
    if "resume" in features:
        # mltp resume (resume.py): finds the newest failed run, and redrives it when nothing changed
        out += [
            Statement("ResumeFind", ("states:ListExecutions",), arns.state_machines()),
            Statement("ResumeRedrive", ("states:RedriveExecution",), arns.executions()),
        ]
    if "prune" in features:
        # mltp prune (housekeeping.py): lists the model's state machines and their
        # executions, deletes idle branch state machines (`<name>--*`, never the default
        # branch's `<name>`). Listing and deleting code under `code/`, DescribeExecution
        # and reading model packages are already granted above (sync repairs code
        # prefixes; wait and approval read packages).
        out += [
            _any("PruneListStateMachines", ("states:ListStateMachines",), "listing state machines"),
            Statement("PruneListExecutions", ("states:ListExecutions",), arns.state_machines()),
            Statement("PruneBranchStateMachines", ("states:DeleteStateMachine",), arns.state_machines()[1:]),
        ]
    out += _kms(arns, "CodeKey", ("kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"))
    return out


def _states(arns: Arns) -> List[Statement]:
    cfg = arns.config
    processing = iam_actions.INTEGRATIONS["sagemaker:createProcessingJob.sync"]
    training = iam_actions.INTEGRATIONS["sagemaker:createTrainingJob.sync"]
    register = iam_actions.INTEGRATIONS["aws-sdk:sagemaker:createModelPackage"]
    tagged = bool(cfg.aws.tags)
    out = [
        Statement("ProcessingJobs", processing.actions + (("sagemaker:AddTags",) if tagged else ()), arns.jobs("processing")),
        Statement("TrainingJob", training.actions + (("sagemaker:AddTags",) if tagged else ()), arns.jobs("training")),
        Statement("SyncJobRules", iam_actions.EVENTS_RULE_ACTIONS,
                  (arns.events_rule(processing.events_rule), arns.events_rule(training.events_rule))),
        Statement("PassSageMakerRole", ("iam:PassRole",), _job_roles(cfg),
                  {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}),
        Statement("ReadEvaluation", ("s3:GetObject",), _evaluation_objects(arns)),
        # CopyModel, CopyEvaluation: a registering run's artifacts, from the default
        # branch's runs only, to registry/, which no job role may write
        Statement("CopyRegisteredArtifacts", ("s3:GetObject",),
                  (arns.s3_objects(f"{arns.model_prefix}runs/*/model/*"),)),
        Statement("WriteRegistry", ("s3:PutObject",), (arns.s3_objects(f"{arns.model_prefix}{REGISTRY}"),)),
        Statement("Register", register.actions, (arns.package_group(), arns.packages())),
        _any("LogDelivery", iam_actions.LOG_DELIVERY_ACTIONS, "log deliveries, resource policies and listing log groups"),
    ]
    out += _kms(arns, "ArtifactKey", ("kms:Decrypt", "kms:GenerateDataKey"))
    return out


def _image_repositories(config: Config) -> List[str]:
    """The ECR repositories of the three steps' images (framework images are
    looked up offline in the SageMaker SDK's tables, as the definition does)."""
    from . import definition

    with definition._hermetic_aws_environment(config.aws.region):
        uris = [definition.image_uri(step, config.aws.region) for step in config.steps.all()]
    out = []
    for uri in uris:
        host, _, path = uri.partition("/")
        account, region = host.split(".")[0], host.split(".")[3]
        repository = path.split("@")[0].split(":")[0]
        partition = "aws-cn" if host.endswith(".cn") else config.aws.states_role_arn.split(":")[1]
        out.append(f"arn:{partition}:ecr:{region}:{account}:repository/{repository}")
    return sorted(set(out))


def _split_s3(uri: str) -> Tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def _step_cache(arns: Arns) -> List[Statement]:
    """The step cache (plan.py, cache_index.py): start and plan read the records of
    the state machine's own area (a branch's, then the default branch's) and list
    the inputs (their ETags are part of preprocessing's key) and a record's outputs
    (still there?); wait writes the records of the steps that ran. A branch's hit
    on a default-branch record is copied (CopyObject, or a multipart copy) by the
    build into the branch run's own folder, so the job roles never read the
    default branch's runs: Jenkins reads the three steps' outputs of `runs/*` and
    writes them under `branches/*/runs/*`, nothing else of either."""
    root = arns.model_prefix
    areas = (f"{root}cache/*", f"{root}branches/*/cache/*")
    outputs = ("preprocessing/*", "model/*", "evaluation/*")  # naming.execution_input's step folders
    out = [
        Statement("StepCacheRecords", ("s3:GetObject", "s3:PutObject"), tuple(arns.s3_objects(a) for a in areas)),
        Statement("StepCacheList", ("s3:ListBucket",), (arns.s3_bucket(),),
                  {"StringLike": {"s3:prefix": list(areas) + [f"{root}{DEFAULT_RUNS}", f"{root}{BRANCH_RUNS}"]}}),
        Statement("StepCacheCopyFrom", ("s3:GetObject",),
                  tuple(arns.s3_objects(f"{root}runs/*/{o}") for o in outputs)),
        Statement("StepCacheCopyTo", ("s3:PutObject", "s3:AbortMultipartUpload"),
                  tuple(arns.s3_objects(f"{root}branches/*/runs/*/{o}") for o in outputs)),
    ]
    sources = sorted({_split_s3(item.source) for item in arns.config.steps.preprocessing.inputs})
    for index, (bucket, key) in enumerate(sources, start=1):
        out.append(Statement(f"StepCacheInput{index}", ("s3:ListBucket",), (arns.s3_bucket(bucket),),
                             {"StringLike": {"s3:prefix": [f"{key}*"]}}))
    return out


def _sagemaker(arns: Arns, branch: bool = False) -> List[Statement]:
    """The jobs' role. The default one (`branch` False) reads the code and writes the
    default branch's runs; when no branch role is configured, branch and pull request
    jobs run as it too, so it also writes the branches' runs (and then a pull
    request's job reaches the default branch's runs: docs/trust.md). The branch role
    reads only branch code and writes only the branches' runs."""
    cfg = arns.config
    root = arns.model_prefix
    if branch:
        code, runs = (BRANCH_CODE,), (BRANCH_RUNS,)
    elif cfg.aws.branch_sagemaker_role_arn:
        code, runs = ("code/*",), (DEFAULT_RUNS,)
    else:
        code, runs = ("code/*",), (DEFAULT_RUNS, BRANCH_RUNS)
    out = [
        Statement("ReadCode", ("s3:GetObject",), tuple(arns.s3_objects(f"{root}{c}") for c in code)),
        Statement("RunData", ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"),
                  tuple(arns.s3_objects(f"{root}{r}") for r in runs)),
        Statement("ListModelPrefix", ("s3:ListBucket",), (arns.s3_bucket(),),
                  {"StringLike": {"s3:prefix": [f"{root}{p}" for p in code + runs]}}),
    ]
    # Preprocessing's inputs and the training channels that read S3 directly.
    sources = [_split_s3(item.source) for item in cfg.steps.preprocessing.inputs]
    sources += [_split_s3(channel.s3_uri) for channel in cfg.steps.training.channels if channel.s3_uri]
    for index, (bucket, key) in enumerate(sorted(set(sources)), start=1):
        out.append(Statement(f"ReadInput{index}", ("s3:GetObject",), (arns.s3_objects(f"{key}*", bucket),)))
        out.append(Statement(f"ListInput{index}", ("s3:ListBucket",), (arns.s3_bucket(bucket),),
                             {"StringLike": {"s3:prefix": [f"{key}*"]}}))
    out += [
        Statement("PullImages", ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"),
                  tuple(_image_repositories(cfg))),
        _any("EcrLogin", ("ecr:GetAuthorizationToken",), "the ECR login token"),
        Statement("JobLogGroups", ("logs:CreateLogGroup", "logs:DescribeLogStreams"),
                  tuple(a for kind in ("processing", "training") for a in arns.log_group(JOB_LOG_GROUPS[kind]))),
        Statement("JobLogStreams", ("logs:CreateLogStream", "logs:PutLogEvents"),
                  arns.job_log_streams("processing") + arns.job_log_streams("training")),
        _any("JobMetrics", ("cloudwatch:PutMetricData",), "CloudWatch metrics (scoped by namespace instead)",
             {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}),
    ]
    out += _kms(arns, "JobKey", ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant", "kms:DescribeKey"))
    return out


def _trigger(arns: Arns) -> List[Statement]:
    """What the retraining trigger's handler (trigger_handler.py) calls: its state
    objects under `<prefix>/<name>/trigger/` (trigger.state_prefix: pending.json and
    consumed.json read and written, last-good.json read), and the default branch's
    state machine, whose running retrains it lists and which it starts; with a
    step's cache on, the default branch's cache records (read) and the listings
    the decision needs. The same as trigger.role_policy, which `mltp trigger
    install` puts on the role it creates."""
    function = trigger_function_name(arns.config)
    state = f"{arns.model_prefix}trigger/"
    out = [
        Statement("StartRetraining", ("states:StartExecution", "states:ListExecutions"), arns.state_machines()[:1]),
        Statement("TriggerState", ("s3:GetObject", "s3:PutObject"), (arns.s3_objects(f"{state}*"),)),
        # without it, reading a state object that does not exist yet is refused (403), not 404
        Statement("TriggerStateList", ("s3:ListBucket",), (arns.s3_bucket(),), {"StringLike": {"s3:prefix": [f"{state}*"]}}),
        Statement("FunctionLogGroup", ("logs:CreateLogGroup",), arns.log_group(f"/aws/lambda/{function}")),
        Statement("FunctionLogStreams", ("logs:CreateLogStream", "logs:PutLogEvents"),
                  (arns.log_streams(f"/aws/lambda/{function}"),)),
    ]
    if any(step.cache for step in arns.config.steps.all()):
        # the step cache (trigger_handler.retrain_cache): the default branch's records
        # only, listing its runs (are a record's outputs still there?) and the inputs (ETags)
        out += [
            Statement("StepCacheRecords", ("s3:GetObject",), (arns.s3_objects(f"{arns.model_prefix}cache/*"),)),
            Statement("StepCacheList", ("s3:ListBucket",), (arns.s3_bucket(),),
                      {"StringLike": {"s3:prefix": [f"{arns.model_prefix}cache/*", f"{arns.model_prefix}{DEFAULT_RUNS}"]}}),
        ]
        sources = sorted({_split_s3(item.source) for item in arns.config.steps.preprocessing.inputs})
        for index, (bucket, key) in enumerate(sources, start=1):
            out.append(Statement(f"StepCacheInput{index}", ("s3:ListBucket",), (arns.s3_bucket(bucket),),
                                 {"StringLike": {"s3:prefix": [f"{key}*"]}}))
    out += _kms(arns, "TriggerStateKey", ("kms:Decrypt", "kms:GenerateDataKey"))
    return out


def policy(config: Config, role: str, features: Iterable[str] = (), identity_arn: Optional[str] = None) -> Policy:
    """The permissions `role` needs for this model with these features. `identity_arn`
    (jenkins only) is the Jenkins role or user itself, which preflight may then simulate."""
    wanted = frozenset(features)
    unknown = sorted(wanted - set(FEATURES))
    if unknown or role not in ROLES:
        raise ValueError(f"unknown role {role!r} or features {unknown}")  # the CLI's choices prevent this
    arns = Arns(config)
    builders = {"jenkins": lambda: _jenkins(arns, wanted, identity_arn), "states": lambda: _states(arns),
                "sagemaker": lambda: _sagemaker(arns), "branch-sagemaker": lambda: _sagemaker(arns, branch=True),
                "trigger": lambda: _trigger(arns)}
    return Policy(role, config.name, tuple(builders[role]()), role_arn(config, role))


def role_arn(config: Config, role: str) -> Optional[str]:
    """The role's ARN where config.yaml (or mltp's naming, for the trigger) fixes it."""
    return {"states": config.aws.states_role_arn, "sagemaker": config.aws.sagemaker_role_arn,
            "branch-sagemaker": config.aws.branch_sagemaker_role_arn, "trigger": Arns(config).trigger_role()}.get(role)


def without_permissions(config: Config, role: str) -> Policy:
    """The role with no statements: what `--trust` output needs (no image lookups)."""
    return Policy(role, config.name, (), role_arn(config, role))


def trust(config: Config, role: str) -> Dict[str, Any]:
    """Who may assume the role: its AWS service, only on behalf of this account
    (aws:SourceAccount guards against the confused deputy). The Jenkins role's
    trust depends on where Jenkins runs; an EC2 instance profile is shown."""
    arns = Arns(config)
    statement: Dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": TRUSTED_SERVICE[role]},
                                 "Action": "sts:AssumeRole"}
    if role in ("states", "sagemaker", "branch-sagemaker", "trigger"):
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": arns.account}}
    return {"Version": "2012-10-17", "Statement": [statement]}
