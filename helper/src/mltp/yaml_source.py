"""Reads YAML into plain Python values while remembering where each key stood.

PyYAML's own loaders forget line numbers, silently keep the last of duplicate
keys and expand aliases without limit; config errors must name file, line and
key, so we walk the composed node tree ourselves. PyYAML is imported by
parse() alone: a config text found valid before is never parsed again
(config/schema_cache.py), and the types here serve it without PyYAML.
"""

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Tuple

if TYPE_CHECKING:
    import yaml

# A config.yaml is a page of settings: anything near these sizes is an accident
# or an attack (alias bombs expand a few hundred bytes into billions of values).
MAX_BYTES = 256 * 1024
MAX_VALUES = 20_000
MAX_DEPTH = 50  # config.yaml nests five levels; PyYAML's own parser recurses per level

Path = Tuple[Any, ...]


@dataclass
class Problem:
    line: int
    key: str
    message: str


@dataclass
class Document:
    """The parsed value plus, for every key path, the 1-based line of its key."""

    value: Any
    lines: Dict[Path, int] = field(default_factory=dict)
    problems: List[Problem] = field(default_factory=list)

    def line_of(self, path: Path) -> int:
        """Line of the nearest enclosing key that appears in the file."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1


def printable(text: Any) -> str:
    """A key as one line: control characters (a newline in a key) are escaped,
    so an error stays one line naming what the file holds."""
    text = str(text)
    return text if text.isprintable() else json.dumps(text)[1:-1]


def key_path(path: Path) -> str:
    """('steps', 'training', 'script') -> steps.training.script; ints -> [i]."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + printable(part)
    return out or "(top level)"


class TooLarge(Exception):
    pass


class TooDeep(Exception):
    pass


class _Walker:
    def __init__(self, loader: "yaml.SafeLoader"):
        import yaml

        self.yaml = yaml
        self.loader = loader
        self.count = 0
        self.lines: Dict[Path, int] = {}
        self.problems: List[Problem] = []

    def walk(self, node: "yaml.Node", path: Path) -> Any:
        yaml = self.yaml
        self.count += 1
        if self.count > MAX_VALUES:
            raise TooLarge()
        if len(path) > MAX_DEPTH:
            raise TooDeep()
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves "<<" merge keys
            out: Dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(Problem(key_node.start_mark.line + 1, key_path(path), "keys must be plain names"))
                    continue
                key = key_node.value
                child = path + (key,)
                line = key_node.start_mark.line + 1
                if key in out:
                    self.problems.append(
                        Problem(line, key_path(child), f"duplicate key '{key}' (first on line {self.lines[child]})")
                    )
                    continue
                self.lines[child] = line
                out[key] = self.walk(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                child = path + (index,)
                self.lines.setdefault(child, item.start_mark.line + 1)
                items.append(self.walk(item, child))
            return items
        return self.loader.construct_object(node, deep=True)


def parse(text: str) -> Document:
    """Parse YAML text. Syntax errors and oversized documents come back as
    problems (never exceptions) so they are reported like every other error."""
    import yaml

    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return Document(None, problems=[Problem(1, "(file)", f"file is larger than {MAX_BYTES // 1024} KiB")])
    try:
        # PyYAML's reader checks every character when the loader is made: NUL or
        # ESC bytes raise here, before any parsing.
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        return Document(None, problems=[_reader_problem(text, exc)])
    try:
        try:
            node = loader.get_single_node()
        except yaml.reader.ReaderError as exc:
            return Document(None, problems=[_reader_problem(text, exc)])
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            reason = exc.problem or exc.context or "invalid YAML"
            return Document(None, problems=[Problem(line, "(file)", f"invalid YAML: {reason}")])
        except yaml.YAMLError as exc:
            return Document(None, problems=[Problem(1, "(file)", f"invalid YAML: {exc}")])
        except (RecursionError, MemoryError):
            return Document(None, problems=[_too_deep()])
        if node is None:
            return Document(None)
        walker = _Walker(loader)
        try:
            value = walker.walk(node, ())
        except TooLarge:
            return Document(
                None,
                problems=[Problem(1, "(file)", f"YAML expands to more than {MAX_VALUES} values (aliases?); refusing to read it")],
            )
        except TooDeep:
            return Document(None, problems=[_too_deep()])
        except (RecursionError, MemoryError):
            return Document(None, problems=[_too_deep()])
        except yaml.constructor.ConstructorError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark else 1
            return Document(None, problems=[Problem(line, "(file)", f"invalid YAML value: {exc.problem}")])
        return Document(value, walker.lines, walker.problems)
    finally:
        loader.dispose()


def _too_deep() -> Problem:
    return Problem(1, "(file)", f"YAML is nested more than {MAX_DEPTH} levels deep; refusing to read it")


def _reader_problem(text: str, exc: "yaml.reader.ReaderError") -> Problem:
    """NUL, ESC and other control characters: PyYAML refuses them with a position
    in characters; we name the line and the character."""
    position = exc.position if isinstance(exc.position, int) else 0
    line = text[:position].count("\n") + 1
    character = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    return Problem(line, "(file)", f"invalid YAML: control character U+{character:04X} is not allowed in YAML text")
