"""Untrusted text, made harmless for the report files.

Much of what a report shows comes from outside mltp: a failure reason or log
line a script wrote, a value from evaluation.json, a branch name, a build URL
from the environment, a registry field. Written raw, a reason such as
`<a href="https://evil.example/approve">PASSED: click to approve</a>` becomes
a link in report.md, and an ESC byte recolours a terminal or a log viewer. So:

- control characters (C0 but tab and newline, DEL, C1) and the Unicode
  direction overrides are shown as escapes (`\\x1b`, `\\u202e`), never written;
- in report.md, text that could become markup (an HTML tag or comment, a link
  or image, an autolink, a code span, a backslash escape, a bare URL) is put in
  a code span, which Markdown shows literally; `|` is escaped in table cells;
- summary.txt (the Jenkins build description) has no `<` that could open a tag;
- links are made only to the https:// AWS console addresses mltp builds
  (`console_link`): anything else is shown as text.

report.html escapes with html.escape after `visible`; junit.xml's XML writer
escapes markup, and `visible` keeps what XML cannot carry out of it.
"""

import re
import urllib.parse
from typing import Any, Optional

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# What Markdown (CommonMark + GitHub's extensions) could turn into markup: a tag,
# comment or autolink (`<` then a letter, '/', '!' or '?'), link and image
# brackets, code spans, backslash escapes, entity references, bare URLs.
_MARKUP = re.compile(r"<[A-Za-z/!?]|[\[\]`\\]|&#?\w+;|://|\bwww\.|\bjavascript:|\bdata:", re.I)
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
# The consoles whose addresses mltp builds (follow._console): the commercial and China partitions.
_CONSOLE_HOSTS = ("console.aws.amazon.com", "console.amazonaws.cn")
_URL_SAFE = re.compile(r"^[A-Za-z0-9\-._~:/?#@!$&'*+,;=%]+$")


def _escape(match: "re.Match[str]") -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: Any) -> str:
    """`value` as text with every control character shown as an escape."""
    return _CONTROL.sub(_escape, "" if value is None else str(value))


def one_line(value: Any) -> str:
    """`visible`, with line breaks (and tabs) as spaces."""
    return re.sub(r"[\r\n\t]+", " ", visible(value).replace("\\x0d", " "))


def md(value: Any, cell: bool = True) -> str:
    """One line of untrusted text for report.md: as it is when it holds nothing
    Markdown reads as markup, else as a code span. `cell`: inside a table, where
    '|' must be escaped (GitHub's tables unescape it, code spans included)."""
    text = one_line(value)
    if _MARKUP.search(text):
        longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
        fence = "`" * (longest + 1)
        pad = " " if text.startswith("`") or text.endswith("`") else ""
        text = f"{fence}{pad}{text}{pad}{fence}"
    return text.replace("|", "\\|") if cell else text


def plain(value: Any) -> str:
    """One line for summary.txt (the build description): no control characters
    and no '<' that could open an HTML tag (shown as '‹'); '<=' and '< 0.9' stay."""
    return _TAG_START.sub("\u2039", one_line(value))


def console_link(url: Any) -> Optional[str]:
    """`url` when it is an https:// address of the AWS console mltp builds, else None."""
    if not url or not isinstance(url, str) or not _URL_SAFE.match(url):
        return None
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or parts.username or parts.password or parts.port:
        return None
    if not any(host == domain or host.endswith("." + domain) for domain in _CONSOLE_HOSTS):
        return None
    return url


_LOG_FILE = re.compile(r"logs/[A-Za-z0-9][A-Za-z0-9.-]*\.log")


def log_file_link(path: Any) -> Optional[str]:
    """A local run's job log beside the report (`logs/<job name>.log`, a path mltp
    makes) as a relative link, or None for anything else."""
    text = str(path or "")
    return text if _LOG_FILE.fullmatch(text) and ".." not in text else None
