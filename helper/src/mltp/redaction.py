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
)


def redact(text: str) -> str:
    """`text` without anything that looks like a credential or a signature."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text
