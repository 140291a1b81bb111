"""`mltp iam-policy`: a role's least-privilege policy, from the config alone."""

import re
from typing import Optional

from ..config import Config
from ..errors import InvalidInput


def iam_policy(cfg: Config, role: str, features=(), trust: bool = False, fmt: str = "json",
               jenkins_arn: Optional[str] = None):
    """(text, notes): the policy (or trust policy) as text, and notes for stderr."""
    from .. import policies, policy_formats

    if jenkins_arn and not re.match(r"^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[\w+=,.@/-]+$", jenkins_arn):
        raise InvalidInput(f"--jenkins-arn {jenkins_arn}: must be an IAM role or user ARN such as "
                           "arn:aws:iam::123456789012:role/jenkins-agent")
    if trust:
        policy = policies.without_permissions(cfg, role)
    else:
        policy = policies.policy(cfg, role, features, jenkins_arn if role == "jenkins" else None)
    return policy_formats.render(policy, policies.trust(cfg, role), fmt, trust_only=trust)
