"""The layer rules and the import graph, read from the source with `ast` (nothing is imported).

The folders at the top of the repository install as subpackages of `slack_approvals`; each is
a layer that may import only the layers LAYERS allows it. Every import is checked: at module
level, inside functions, and under `if TYPE_CHECKING:`. No module may import a folder by its
bare name (`import state`): that works from a checkout and fails once installed. And no group
of modules may import each other in a circle (a package's `__init__.py` importing its own
submodules is not a circle: importing `pkg.sub` is an edge to `pkg.sub`, not to `pkg`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "slack_approvals"

# layer folder -> the other layers its modules may import. A new folder is one line here (and a
# symlink in slack_approvals/). The package's own files (slack_approvals/*.py) may import any layer.
LAYERS: Mapping[str, frozenset[str]] = {
    "core": frozenset(),
    "state": frozenset({"core"}),
    "policy": frozenset({"core", "state"}),
    "bot": frozenset({"core", "state", "policy"}),
    "flows": frozenset({"core", "state", "policy"}),
    "approvals": frozenset({"core", "state", "policy", "bot", "flows", "sandbox"}),
    "sandbox": frozenset(),
}


@dataclass(frozen=True)
class Module:
    name: str  # slack_approvals.bot.listeners.actions
    path: Path  # bot/listeners/actions.py, relative to the root
    is_package: bool

    @property
    def layer(self) -> str | None:
        """The layer folder the module lives in; None for the package's own files."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 and self.path.parts[0] != PACKAGE else None


@dataclass(frozen=True)
class Import:
    module: Module  # the importing module
    line: int
    text: str  # the statement as written
    written: str  # the dotted name as written (`..voting`, `state.models`)
    targets: tuple[str, ...]  # absolute names: a module, or the package `from x import` takes names from
    type_only: bool  # under `if TYPE_CHECKING:`; not a runtime edge

    def where(self) -> str:
        return f"{self.module.path.as_posix()}:{self.line}: {self.text}"


@dataclass(frozen=True)
class Problem:
    message: str


def discover(root: Path, layers: Iterable[str]) -> dict[str, Module]:
    """Every module of the layer folders that exist, plus the package's own files."""
    files: list[Path] = [p for layer in layers if (root / layer).is_dir()
                         for p in (root / layer).rglob("*.py")]
    package_dir = root / PACKAGE
    if package_dir.is_dir():
        files += [p for p in package_dir.glob("*.py") if p.is_file()]
    modules: dict[str, Module] = {}
    for path in sorted(files):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts:
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[0] != PACKAGE:
            parts.insert(0, PACKAGE)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        modules[name] = Module(name=name, path=rel, is_package=is_package)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST,
                  type_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement anywhere in the tree, and whether only type checkers see it."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, type_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _import_nodes(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from _import_nodes(ast.Module(body=[child], type_ignores=[]), type_only)
        else:
            yield from _import_nodes(node, type_only)


def resolve_relative(module: Module, level: int, name: str | None) -> str | None:
    """`from ..voting import x` in slack_approvals.bot.listeners.actions -> slack_approvals.bot.voting;
    None when the dots climb out of the package."""
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    if level - 1 >= len(package):
        return None
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, name] if name else base)


def read_imports(root: Path, modules: Mapping[str, Module]) -> tuple[list[Import], list[Problem]]:
    imports: list[Import] = []
    problems: list[Problem] = []
    for module in modules.values():
        source = (root / module.path).read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(module.path))
        for node, type_only in _import_nodes(tree):
            text = " ".join((ast.get_source_segment(source, node) or "").split())
            if isinstance(node, ast.Import):
                for alias in node.names:
                    imports.append(Import(module, node.lineno, text, alias.name, (alias.name,), type_only))
                continue
            written = "." * node.level + (node.module or "")
            if node.level:
                base = resolve_relative(module, node.level, node.module)
                if base is None:
                    problems.append(Problem(f"{module.path.as_posix()}:{node.lineno}: {text}\n"
                                            f"    climbs out of the {PACKAGE} package"))
                    continue
            else:
                base = node.module or ""
            # `from pkg import name` imports the submodule pkg.name when there is one.
            targets = tuple(dict.fromkeys(
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names))
            imports.append(Import(module, node.lineno, text, written, targets, type_only))
    return imports, problems


def layer_of(target: str) -> str | None:
    """The layer an absolute name belongs to; None for names outside the package."""
    parts = target.split(".")
    if parts[0] != PACKAGE:
        return None
    return parts[1] if len(parts) > 1 else ""


def layer_problems(imports: Iterable[Import], layer: str, layers: Mapping[str, frozenset[str]]) -> list[str]:
    allowed = layers[layer]
    problems: list[str] = []
    for imp in imports:
        if imp.module.layer != layer:
            continue
        for target in imp.targets:
            other = layer_of(target)
            if other is None or other == layer:
                continue
            if other == "":
                reason = f"imports the package root {PACKAGE}; name the layer module instead"
            elif other not in layers:
                reason = f"{PACKAGE}.{other} is no known layer (add it to LAYERS in {Path(__file__).name})"
            elif other in allowed:
                continue
            else:
                may = ", ".join(sorted(allowed)) or f"nothing outside {PACKAGE}.{layer}"
                reason = f"{layer} may not import {PACKAGE}.{other} ({layer} may import: {may})"
            problems.append(f"{imp.where()}\n    {reason}")
    return problems


def bare_name_problems(imports: Iterable[Import], folders: Iterable[str]) -> list[str]:
    names = set(folders)
    return [f"{imp.where()}\n    imports the folder `{imp.written.split('.')[0]}` by its bare name; "
            f"use {PACKAGE}.{imp.written} or a relative import"
            for imp in imports
            if not imp.written.startswith(".") and imp.written.split(".")[0] in names]


def module_graph(imports: Iterable[Import],
                 modules: Mapping[str, Module]) -> dict[str, dict[str, list[Import]]]:
    """module -> imported module -> the statements that import it (runtime imports of ours only)."""
    graph: dict[str, dict[str, list[Import]]] = {name: {} for name in modules}
    for imp in imports:
        if imp.type_only:
            continue
        for target in imp.targets:
            # `import a.b.attr` is an error anyway; the longest prefix that is a module stands in.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != imp.module.name:
                graph[imp.module.name].setdefault(target, []).append(imp)
    return graph


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively; components in a stable order, members sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return sorted(components)


def cycle_problems(imports: Iterable[Import], modules: Mapping[str, Module]) -> list[str]:
    graph = module_graph(imports, modules)
    problems: list[str] = []
    for component in strongly_connected(graph):
        if len(component) < 2:
            continue
        members = set(component)
        edges = [f"    {imp.where()}  -> {target}"
                 for source in component for target, found in sorted(graph[source].items())
                 if target in members for imp in found]
        problems.append(f"import cycle between {len(component)} modules: {', '.join(component)}\n"
                        + "\n".join(edges))
    return problems


def report(title: str, problems: list[str]) -> str:
    return f"{title} ({len(problems)}):\n\n" + "\n\n".join(problems)


# ---------------------------------------------------------------------------------------------
# The repository


@pytest.fixture(scope="module")
def scanned() -> tuple[dict[str, Module], list[Import], list[Problem]]:
    modules = discover(ROOT, LAYERS)
    imports, problems = read_imports(ROOT, modules)
    return modules, imports, problems


def test_every_installed_folder_has_layer_rules() -> None:
    """A folder that installs as slack_approvals.<name> has a line in LAYERS, and vice versa."""
    installed = {p.name for p in (ROOT / PACKAGE).iterdir()
                 if p.is_dir() and p.name != "__pycache__" and (p / "__init__.py").exists()}
    unruled = sorted(installed - set(LAYERS))
    assert not unruled, (f"{PACKAGE}/ installs {unruled} but LAYERS in {Path(__file__).name} "
                         "has no rule for it")
    not_installed = sorted(name for name in LAYERS if (ROOT / name).is_dir() and name not in installed)
    assert not not_installed, (f"the layer folders {not_installed} exist but {PACKAGE}/ has no symlink "
                               "to them, so the wheel would not hold them")
    assert {"state", "bot", "flows", "approvals", "sandbox"} <= installed


def test_relative_imports_stay_inside_the_package(
        scanned: tuple[dict[str, Module], list[Import], list[Problem]]) -> None:
    modules, _, problems = scanned
    assert len(modules) > 20, f"found only {sorted(modules)} under {ROOT}"
    assert not problems, report("relative imports outside the package", [p.message for p in problems])


@pytest.mark.parametrize("layer", [name for name in LAYERS if (ROOT / name).is_dir()])
def test_layer_imports_only_what_it_may(
        layer: str, scanned: tuple[dict[str, Module], list[Import], list[Problem]]) -> None:
    _, imports, _ = scanned
    problems = layer_problems(imports, layer, LAYERS)
    assert not problems, report(f"imports that break the rules of {layer}/", problems)


def test_no_folder_is_imported_by_its_bare_name(
        scanned: tuple[dict[str, Module], list[Import], list[Problem]]) -> None:
    _, imports, _ = scanned
    problems = bare_name_problems(imports, LAYERS)
    assert not problems, report(f"imports by folder name instead of {PACKAGE}.*", problems)


def test_no_import_cycles(scanned: tuple[dict[str, Module], list[Import], list[Problem]]) -> None:
    modules, imports, _ = scanned
    problems = cycle_problems(imports, modules)
    assert not problems, report("import cycles (module-level and function-level imports)", problems)


# ---------------------------------------------------------------------------------------------
# The checks themselves, on a small made-up tree


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_checks_find_what_they_should(tmp_path: Path) -> None:
    _write(tmp_path, {
        f"{PACKAGE}/__init__.py": "",
        f"{PACKAGE}/__main__.py": f"from {PACKAGE}.bot.app import main\n",
        "state/__init__.py": "from .models import Thing\n",
        "state/models.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                           f"    from {PACKAGE}.flows.gates import Gate\n",
        "bot/__init__.py": "from .app import main\nfrom . import voting\n",
        "bot/app.py": f"from {PACKAGE}.state import models\nfrom .voting import vote\n",
        "bot/voting.py": f"from {PACKAGE}.state.models import Thing\n",
        "bot/listeners/__init__.py": "",
        "bot/listeners/actions.py": "from ..voting import vote\nfrom ... import bot\n"
                                    "def later() -> None:\n    from ..listeners import views\n",
        "bot/listeners/views.py": "from .actions import later\n",
        "flows/__init__.py": "from .gates import gate\n",
        "flows/gates.py": "def gate() -> None:\n    from slack_approvals.flows import registry\n",
        "flows/registry.py": "import slack_approvals.flows.gates\nimport state.models\n"
                             f"from {PACKAGE}.bot.voting import vote\n",
        "sandbox/__init__.py": f"from {PACKAGE} import sandbox\nfrom .... import far\n",
    })
    modules = discover(tmp_path, LAYERS)
    assert modules[f"{PACKAGE}.bot.listeners"].is_package
    assert modules[f"{PACKAGE}.__main__"].layer is None
    imports, problems = read_imports(tmp_path, modules)
    assert [p.message.split(":")[0:2] for p in problems] == [["sandbox/__init__.py", "2"]]

    by_text = {(imp.module.path.as_posix(), imp.text): imp for imp in imports}
    assert by_text["bot/listeners/actions.py", "from ..voting import vote"].targets == (
        f"{PACKAGE}.bot.voting",)
    assert by_text["bot/listeners/actions.py", "from ... import bot"].targets == (f"{PACKAGE}.bot",)
    assert by_text["bot/app.py", f"from {PACKAGE}.state import models"].targets == (
        f"{PACKAGE}.state.models",)

    # The TYPE_CHECKING import still breaks the layer rule of state; the others are fine.
    assert [p.splitlines()[0] for p in layer_problems(imports, "state", LAYERS)] == [
        f"state/models.py:3: from {PACKAGE}.flows.gates import Gate"]
    assert layer_problems(imports, "bot", LAYERS) == []
    flows = layer_problems(imports, "flows", LAYERS)
    assert [p.splitlines()[0] for p in flows] == [
        f"flows/registry.py:3: from {PACKAGE}.bot.voting import vote"]
    assert "flows may not import slack_approvals.bot" in flows[0]
    assert layer_problems(imports, "sandbox", LAYERS) == []  # its own package, by submodule

    assert [p.splitlines()[0] for p in bare_name_problems(imports, LAYERS)] == [
        "flows/registry.py:2: import state.models"]

    # bot/__init__ re-exporting its submodules is no cycle; actions <-> views and the
    # function-level gates <-> registry are.
    cycles = cycle_problems(imports, modules)
    assert [c.splitlines()[0] for c in cycles] == [
        f"import cycle between 2 modules: {PACKAGE}.bot.listeners.actions, {PACKAGE}.bot.listeners.views",
        f"import cycle between 2 modules: {PACKAGE}.flows.gates, {PACKAGE}.flows.registry",
    ]
    assert (f"flows/gates.py:2: from slack_approvals.flows import registry  -> {PACKAGE}.flows.registry"
            in cycles[1])


def test_strongly_connected_components() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": ["e"], "e": ["d"], "f": ["a"], "g": []}
    assert strongly_connected(graph) == [["a", "b", "c"], ["d", "e"], ["f"], ["g"]]
