"""Keeps credentials out of everything mltp prints or writes.

Error lines are the one place where text from AWS and botocore reaches a build
log verbatim, and Jenkins masks only the exact secrets it bound, not an access
key id or a SigV4 signature quoted inside botocore's message. Everything the
CLI prints for an error, and the error file, goes through `redact`: the second
line of defence behind never putting such values in messages at all.
No heavy imports: the CLI imports this for every command.
"""

import re

# What must never be printed: access key ids, SigV4 signatures and credential
# scopes, Authorization headers, session tokens. botocore puts some of these in
# its messages (SignatureDoesNotMatch quotes the string it signed), and a build
# log shows error lines outside Jenkins' credential masking.
_SECRETS = (
    (re.compile(r"(?i)authorization\s*[:=]\s*\S+(\s+\S+=\S+)*"), "Authorization: [redacted]"),
    (re.compile(r"(?i)(x-amz-security-token|x-amz-signature|x-amz-credential|signature|credential|"
                r"aws_secret_access_key|aws_session_token|secretaccesskey|sessiontoken)(\s*[:=]\s*)[^\s,&;]+"),
     r"\1=[redacted]"),
    (re.compile(r"(?<![A-Z0-9])(AKIA|ASIA|AIDA|AROA|ANPA|AGPA|AIPA|ANVA|ABIA|ACCA)[A-Z0-9]{12,}"), "[redacted key id]"),
    # A bare 64-digit hex string may be a SigV4 signature; one written as
    # `sha256:<hex>` is a content digest mltp computed itself (fetch-model's
    # checksum check shows both), which is no secret and must stay readable.
    (re.compile(r"(?<![0-9a-f])(?<!sha256:)[0-9a-f]{64}(?![0-9a-f])"), "[redacted signature]"),
    (re.compile(r"AWS4-HMAC-SHA256[^\n]*"), "AWS4-HMAC-SHA256 [redacted]"),
    # Tokens of other services, which a user may paste into a config file by mistake:
    # GitHub (classic and fine-grained), Slack, GitLab and Hugging Face tokens.
    (re.compile(r"(?<![A-Za-z0-9_])(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), "[redacted token]"),
    (re.compile(r"(?<![A-Za-z0-9])xox[abposre]-[A-Za-z0-9-]{10,}"), "[redacted token]"),
    (re.compile(r"(?<![A-Za-z0-9])(glpat-[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{30,})"), "[redacted token]"),
)
# A config key is shown in an error only when it reads like one: short, a letter
# first, then letters, digits, '_' or '-'.
_PLAUSIBLE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")


def redact(text: str) -> str:
    """`text` without anything that looks like a credential or a signature."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def looks_secret(text: str) -> bool:
    """A token of a known kind, or a long random-looking string: 20 or more
    characters without a space that mix upper case, lower case and digits."""
    text = str(text)
    if redact(text) != text:
        return True
    if re.search(r"\s", text) or len(text) < 20:
        return False
    return bool(re.search(r"[a-z]", text) and re.search(r"[A-Z]", text) and re.search(r"[0-9]", text))


def shown_key(name: object) -> bool:
    """Whether an error may echo this config key (an unknown one included): a
    secret pasted where a key goes must not reach a build log. A plausible key
    name, and not one that mixes upper case, lower case and digits like a
    password or a token does."""
    text = str(name)
    if not _PLAUSIBLE_KEY.fullmatch(text) or looks_secret(text):
        return False
    mixed = re.search(r"[a-z]", text) and re.search(r"[A-Z]", text) and re.search(r"[0-9]", text)
    return not mixed
