"""The import rules of the design (README, "Architecture"), checked over the source with `ast`.

Every import counts, at module top or inside a function. The rules:

- The core (`evidence_store/domain/*`, `retention/policy.py`, `workers/pipeline.py`,
  `evidence_store/cases/report.py`, `cases/timeline.py`, `export/manifest.py`) imports only the core,
  the standard library and pure libraries: no other project module, no database, store, queue, web,
  process or media library.
- No import runs up the layers: core <- evidence_store <- {ingest, retention, workers} <- web <-
  entrypoints. ingest, retention and workers sit side by side and may use each other, without a cycle.
- No cycle: neither between packages (each top-level package a node, and each subpackage and each
  top-level module of `evidence_store`), nor between the modules of one package.

Each failure names the file, the line and the import, so the fix starts there.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("evidence_store", "ingest", "retention", "workers", "web", "entrypoints")

CORE_PACKAGES = ("evidence_store.domain",)
CORE_MODULES = (
    # the one error hierarchy imports nothing, so the core may raise the project's own errors
    "evidence_store.errors",
    "retention.policy",
    "workers.pipeline",
    "evidence_store.cases.report",
    "evidence_store.cases.timeline",
    "evidence_store.export.manifest",
)
# what the core must never reach for: the adapters' libraries (database, store, queue, web, processes,
# media); the standard library and pure helpers stay allowed
ADAPTER_LIBRARIES = frozenset(
    {
        "sqlalchemy",
        "alembic",
        "psycopg",
        "boto3",
        "botocore",
        "dramatiq",
        "redis",
        "subprocess",
        "fastapi",
        "starlette",
        "uvicorn",
        "av",
        "ffmpeg",
        "pyudev",
        "watchdog",
    }
)
# lower rank = lower layer; an import may run to its own rank or below, never above
SIDE_BY_SIDE = ("ingest", "retention", "workers")
RANKS = {"core": 0, "evidence_store": 1, **dict.fromkeys(SIDE_BY_SIDE, 2), "web": 3, "entrypoints": 4}


@dataclass(frozen=True)
class Import:
    path: Path  # relative to the repository
    line: int
    text: str  # the import statement as written
    importer: str  # dotted module name
    target: str  # a project module (dotted) or an outside top-level name

    def where(self) -> str:
        return f"{self.path}:{self.line}: `{self.text}`"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def project_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        root = REPO / package
        if not (root / "__init__.py").is_file():
            continue  # `entrypoints` before it exists
        for path in sorted(root.rglob("*.py")):
            modules[module_name(path)] = path
    return modules


def is_project(name: str) -> bool:
    return name.split(".", maxsplit=1)[0] in PACKAGES


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _targets(importer: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    modules = project_modules()
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name if is_project(alias.name) else alias.name.split(".")[0]
        return
    base = _resolve(importer, is_package, node)
    if not is_project(base):
        yield base.split(".")[0]
        return
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        yield submodule if submodule in modules else base


def imports_in(source: str, name: str, path: Path) -> Iterator[Import]:
    """Every import of one module's source, at any depth (in functions, under `if`), resolved."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        text = ast.unparse(node)
        for target in dict.fromkeys(_targets(name, is_package, node)):
            yield Import(path, node.lineno, text, name, target)


@cache
def all_imports() -> tuple[Import, ...]:
    found: list[Import] = []
    for name, path in project_modules().items():
        found.extend(imports_in(path.read_text(encoding="utf-8"), name, path.relative_to(REPO)))
    return tuple(found)


def project_imports() -> list[Import]:
    """Imports of one project module by another (a module importing itself is not an edge)."""
    modules = project_modules()
    return [i for i in all_imports() if i.target in modules and i.target != i.importer]


def is_core(module: str) -> bool:
    return module in CORE_MODULES or any(
        module == package or module.startswith(f"{package}.") for package in CORE_PACKAGES
    )


def layer(module: str) -> str:
    return "core" if is_core(module) else module.split(".", maxsplit=1)[0]


def node_of(module: str) -> str:
    """The package-level node: a top-level package, or a subpackage or top-level module of
    `evidence_store` (whose root holds both foundations like `errors` and services like `scrub`)."""
    parts = module.split(".")
    if parts[0] == "evidence_store" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(edges.get(succ, ())))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
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
                if len(component) > 1:
                    found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def describe_cycles(imports: list[Import], node: dict[str, str]) -> list[str]:
    """Each cycle among the nodes, with every import that makes one of its edges."""
    edges: dict[str, set[str]] = defaultdict(set)
    for i in imports:
        a, b = node[i.importer], node[i.target]
        if a != b:
            edges[a].add(b)
    messages = []
    for component in cycles(edges):
        members = set(component)
        lines = [
            f"    {node[i.importer]} -> {node[i.target]}: {i.where()}"
            for i in sorted(imports, key=lambda i: (str(i.path), i.line))
            if node[i.importer] in members
            and node[i.target] in members
            and node[i.importer] != node[i.target]
        ]
        messages.append(f"cycle {' <-> '.join(component)}:\n" + "\n".join(lines))
    return messages


# -- the rules ------------------------------------------------------------------------------------------


def test_the_scan_sees_the_project() -> None:
    """The check must not pass by finding nothing."""
    modules = project_modules()
    assert {"evidence_store.domain.model", "retention.policy", "web.app"} <= modules.keys()
    assert any(
        i.importer == "retention.policy" and i.target == "evidence_store.domain.model" for i in all_imports()
    )


def test_imports_in_functions_and_relative_imports_count() -> None:
    source = (
        "from __future__ import annotations\n"
        "import sqlalchemy.orm\n"
        "from . import policy\n"
        "def later():\n"
        "    from ..evidence_store.domain import model\n"
        "    if True:\n"
        "        from evidence_store.db.tables import clips\n"
    )
    found = [
        (i.line, i.target) for i in imports_in(source, "retention.example", Path("retention/example.py"))
    ]
    assert found == [
        (2, "sqlalchemy"),
        (3, "retention.policy"),
        (5, "evidence_store.domain.model"),
        (7, "evidence_store.db.tables"),
    ]


def core_problems(imports: Iterable[Import]) -> list[str]:
    problems = []
    for i in imports:
        if not is_core(i.importer):
            continue
        if is_project(i.target) and not is_core(i.target):
            problems.append(f"{i.where()}: the core imports non-core module {i.target}")
        elif not is_project(i.target) and i.target in ADAPTER_LIBRARIES:
            problems.append(f"{i.where()}: the core imports adapter library {i.target}")
    return problems


def layer_problems(imports: Iterable[Import]) -> list[str]:
    modules = project_modules()
    return [
        f"{i.where()}: {layer(i.importer)} (layer {RANKS[layer(i.importer)]}) imports "
        f"{i.target} ({layer(i.target)}, layer {RANKS[layer(i.target)]})"
        for i in imports
        if i.target in modules and RANKS[layer(i.target)] > RANKS[layer(i.importer)]
    ]


def test_the_core_imports_only_the_core() -> None:
    problems = core_problems(all_imports())
    assert not problems, "\n".join(problems)


def test_no_import_runs_up_the_layers() -> None:
    problems = layer_problems(project_imports())
    assert not problems, "\n".join(problems)


def test_the_rules_catch_what_they_forbid() -> None:
    """A core module reaching for the database or a service, and a service reaching up for the web,
    are reported with their file and line."""
    source = (
        "from sqlalchemy import select\n"
        "from evidence_store.db.tables import clips\n"
        "from evidence_store.domain.model import Clip\n"
        "import json\n"
    )
    core = list(imports_in(source, "evidence_store.domain.example", Path("evidence_store/domain/example.py")))
    assert core_problems(core) == [
        "evidence_store/domain/example.py:1: `from sqlalchemy import select`: "
        "the core imports adapter library sqlalchemy",
        "evidence_store/domain/example.py:2: `from evidence_store.db.tables import clips`: "
        "the core imports non-core module evidence_store.db.tables",
    ]
    upward = list(imports_in("from web.app import create_app\n", "ingest.example", Path("ingest/example.py")))
    assert layer_problems(upward) == [
        "ingest/example.py:1: `from web.app import create_app`: "
        "ingest (layer 2) imports web.app (web, layer 3)"
    ]
    assert layer_problems(imports_in("from ingest import pull\n", "workers.x", Path("workers/x.py"))) == []


def test_no_cycle_between_packages() -> None:
    imports = project_imports()
    node = {m: node_of(m) for m in project_modules()}
    problems = describe_cycles(imports, node)
    assert not problems, "\n".join(problems)


def test_no_cycle_between_modules() -> None:
    imports = project_imports()
    node = {m: m for m in project_modules()}
    problems = describe_cycles(imports, node)
    assert not problems, "\n".join(problems)


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
