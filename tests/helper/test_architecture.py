"""The helper's layers, read from its source with `ast` (nothing imported):
no import circle, the local emulator only reached from the edge (the CLI),
the verbs below the CLI, and one verb table that the CLI and the Jenkins side
agree with."""

import ast
import re
from pathlib import Path
from typing import Dict, List, Set

import pytest

from mltp import cli, verbs

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "helper" / "src" / "mltp"


def _modules() -> Dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph() -> Dict[str, Set[str]]:
    """Module -> the mltp modules it imports, at the top or inside a function
    (a lazy import is still a dependency). `from pkg import name` counts as
    pkg.name when that is a module, else as pkg."""
    modules = _modules()
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges: Set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = alias.name
                    while target not in modules and "." in target:
                        target = target.rsplit(".", 1)[0]
                    if target in modules:
                        edges.add(target)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base.split(".")[0] != "mltp":
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    edges.add(full if full in modules else base)
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_graph_is_read():
    graph = import_graph()
    assert "mltp.local.session" in graph["mltp.cli"]
    assert "mltp.commands.run" in graph["mltp.cli"]
    assert {"mltp.commands.sync", "mltp.commands.wait"} <= graph["mltp.commands.run"]


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle():
    assert cycles(import_graph()) == []


def _top_level_names(path: Path) -> Set[str]:
    names: Set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_every_import_of_the_package_names_something_that_is_there():
    """A moved module's relative imports point where it now is (`from . import gate`
    in a subpackage would only fail when that line runs)."""
    modules = _modules()
    missing = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            base = package.split(".")
            base = ".".join(base[: len(base) - (node.level - 1)] + ([node.module] if node.module else []))
            if base not in modules:
                missing.append(f"{name}:{node.lineno}: {base}")
                continue
            defined = _top_level_names(modules[base])
            missing += [f"{name}:{node.lineno}: {base}.{alias.name}" for alias in node.names
                        if f"{base}.{alias.name}" not in modules and alias.name not in defined]
    assert missing == []


def test_the_local_emulator_is_reached_only_from_the_edge():
    """Only the CLI chooses the environment: nothing else imports mltp.local."""
    wrong = sorted(f"{m} -> {t}" for m, targets in import_graph().items() for t in targets
                   if _within(t, "mltp.local") and not (_within(m, "mltp.local") or m == "mltp.cli"))
    assert wrong == []


def test_commands_do_not_import_the_cli():
    wrong = sorted(f"{m} -> {t}" for m, targets in import_graph().items() for t in targets
                   if _within(m, "mltp.commands") and t == "mltp.cli")
    assert wrong == []


def test_nothing_below_imports_the_cli_or_the_commands():
    """The CLI is the top, the commands the floor below it: no module under them reaches up."""
    wrong = sorted(f"{m} -> {t}" for m, targets in import_graph().items() for t in targets
                   if not (m == "mltp.cli" or _within(m, "mltp.commands"))
                   and (t == "mltp.cli" or _within(t, "mltp.commands")))
    assert wrong == []


# --------------------------------------------------------------------------- the verb table


def _cli_verbs() -> Set[str]:
    import click

    names = set()
    for name, command in cli.main.commands.items():
        if isinstance(command, click.Group):
            names |= {f"{name} {sub}" for sub in command.commands}
        else:
            names.add(name)
    return names


def test_the_cli_has_the_verbs_of_the_table():
    assert _cli_verbs() == {v.name for v in verbs.VERBS}
    assert cli.SHORT_VERBS is verbs.SHORT_VERBS


@pytest.mark.parametrize("verb", verbs.VERBS, ids=lambda v: v.name)
def test_each_verb_is_a_plain_function_in_its_module(verb):
    path = PACKAGE / "commands" / f"{verb.module}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert verb.function in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, path


def test_helper_sh_runs_the_jenkins_verbs_of_the_table():
    text = (ROOT / "resources" / "mltp" / "helper.sh").read_text(encoding="utf-8")
    allowed = re.search(r"case \$verb in\n(.*?)\) ;;", text, re.S).group(1)
    listed = [v.strip() for v in allowed.replace("\\\n", " ").split("|")]
    assert listed == list(verbs.JENKINS_VERBS)
    message = re.search(r"unknown verb \"%s\" \(([^)]*)\)", text).group(1)
    assert message.split(", ") == list(verbs.JENKINS_VERBS)


def test_the_groovy_helper_lists_the_jenkins_verbs_of_the_table():
    text = (ROOT / "vars" / "mltpHelper.groovy").read_text(encoding="utf-8")
    lists = re.findall(r"List VERBS = \[(.*?)\]", text, re.S)
    assert len(lists) == 1, "one VERBS list in vars/mltpHelper.groovy"
    assert re.findall(r"'([^']+)'", lists[0]) == list(verbs.JENKINS_VERBS)


def test_the_contract_lists_the_verbs_of_the_table():
    text = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    section = text[text.index("### 9.1 Verbs"): text.index("### 9.2")]
    table = section[: section.index("Options in detail")]
    listed = []
    for cell in re.findall(r"^\| `([^`]+)` \|", table, re.M):
        name = " ".join(word for word in cell.split() if not word.startswith(("[", "-")))
        if name not in listed:
            listed.append(name)
    assert listed == [v.name for v in verbs.VERBS]
