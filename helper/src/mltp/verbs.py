"""The verbs of the mltp command, in one table: the CLI's commands are checked
against it, the collector setting comes from it, and the Jenkins side's lists
(resources/mltp/helper.sh, vars/mltpHelper.groovy's VERBS) and
docs/contract.md 9.1 are tested against it (tests/helper/test_architecture.py).

Each verb is done by a plain function of the same name (hyphens as
underscores; for the trigger group, the second word) in mltp/commands/<module>.py.
"""

from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class Verb:
    name: str  # as typed after `mltp` ("trigger install" for the group's verbs)
    module: str  # mltp.commands.<module> holds the function
    short: bool  # ends within seconds: the cyclic collector stays off (cli.SHORT_VERBS)
    jenkins: str = ""  # the verb's name for the Jenkins steps (helper.sh), when they run it

    @property
    def function(self) -> str:
        return self.name.split()[-1].replace("-", "_")


VERBS: Tuple[Verb, ...] = (
    Verb("validate", "validate", short=True, jenkins="validate"),
    Verb("render", "render", short=True),
    Verb("schema", "schema", short=True),
    Verb("init", "init", short=True),
    Verb("iam-policy", "iam_policy", short=True),
    Verb("preflight", "preflight", short=True),
    Verb("sync", "sync", short=True, jenkins="sync"),
    Verb("deploy", "deploy", short=True, jenkins="deploy"),
    Verb("publish", "publish", short=True, jenkins="publish"),
    Verb("plan", "plan", short=True),
    Verb("start", "start", short=True, jenkins="start"),
    Verb("wait", "wait", short=False, jenkins="wait"),
    Verb("stop", "stop", short=True, jenkins="stop"),
    Verb("run", "run", short=False, jenkins="run"),
    Verb("resume", "resume", short=False, jenkins="resume"),
    Verb("clean", "housekeeping", short=True),
    Verb("prune", "housekeeping", short=False, jenkins="prune"),
    Verb("logs", "logs", short=False),
    Verb("trigger install", "trigger", short=False, jenkins="trigger-install"),
    Verb("trigger remove", "trigger", short=False),
    Verb("trigger status", "trigger", short=False),
    Verb("trigger policy", "trigger", short=False),
    Verb("models", "registry", short=True, jenkins="models"),
    Verb("approve", "registry", short=True, jenkins="approve"),
    Verb("reject", "registry", short=True, jenkins="reject"),
    Verb("fetch-model", "registry", short=False, jenkins="fetch-model"),
)

# The top-level commands that end within seconds (the trigger group is not one of them).
SHORT_VERBS = frozenset(v.name for v in VERBS if v.short and " " not in v.name)
# What the Jenkins steps may run, in the order helper.sh and mltpHelper.groovy list them.
JENKINS_VERBS = tuple(v.jenkins for v in VERBS if v.jenkins)
