"""The import rules of the package's layers, read from the source with `ast`.

Every import counts: at module level, inside functions, and under `TYPE_CHECKING`, since
each is an arrow a reader has to follow. Imports are resolved to modules of `mediasvc`
(or the top-level name of a third-party package).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mediasvc"


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imported_names(name: str, path: Path) -> Iterator[str]:
    """The dotted names `path`'s module imports, relative imports made absolute; for
    `from X import y`, `X.y` (a module, when it is one) and `X`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


@cache
def imports() -> dict[str, frozenset[str]]:
    """What each module imports: modules of `mediasvc`, and third-party top-level names."""
    known = modules()
    graph = {}
    for name, path in known.items():
        targets = set()
        for imported in _imported_names(name, path):
            if not imported.startswith("mediasvc"):
                targets.add(imported.partition(".")[0])
                continue
            module = imported
            while module not in known:
                module = module.rpartition(".")[0]
            targets.add(module)
        targets.discard(name)
        graph[name] = frozenset(targets)
    return graph


def _within(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def breaches(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    """`importer -> imported` for every import from `layer` of a forbidden module or package."""
    return sorted(
        f"{importer} -> {imported}"
        for importer, targets in imports().items()
        if _within(importer, layer)
        for imported in targets
        if any(_within(imported, banned) for banned in forbidden)
    )


def cycles() -> list[list[str]]:
    """The package's import cycles: strongly connected groups of more than one module."""
    graph = {name: [t for t in targets if t in modules()] for name, targets in imports().items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while (member := stack.pop()) != module:
                group.append(member)
            if group:
                found.append(sorted([module, *group]))

    for module in graph:
        if module not in index:
            visit(module)
    return found


def test_the_reader_sees_function_level_and_type_checking_imports() -> None:
    """The rules below read every import: the walker finds one inside a function body."""
    assert "mediasvc.storage.s3" in imports()["mediasvc.storage.open"]
    assert "mediasvc.storage.local" in imports()["mediasvc.storage.open"]


def test_no_module_imports_itself_back() -> None:
    """The package has no import cycle, however long or however the import is written."""
    assert cycles() == []


# What imaging may import of the package: the problem-code registry, a standard-library leaf
# (its rejections carry the registry's codes).
IMAGING_MAY_IMPORT = ("mediasvc.contract", "mediasvc.contract.codes")


def test_imaging_imports_nothing_of_the_app() -> None:
    """`imaging/` runs in worker processes: nothing of the app, aiohttp or asyncpg (only the
    problem-code registry, which imports nothing but the standard library)."""
    app = tuple(
        m
        for m in modules()
        if m != "mediasvc" and not _within(m, "mediasvc.imaging") and m not in IMAGING_MAY_IMPORT
    )
    assert breaches("mediasvc.imaging", (*app, "aiohttp", "asyncpg")) == []
    assert breaches("mediasvc.contract.codes", ("mediasvc",)) == []


def test_the_database_layer_knows_no_caller() -> None:
    """`db/` imports nothing of `auth` or `web`: callers hand it plain values."""
    assert breaches("mediasvc.db", ("mediasvc.auth", "mediasvc.web")) == []


def test_the_local_stack_knows_no_handler() -> None:
    """`stack/` (nginx rendering, the dev stack) imports nothing of `web`."""
    assert breaches("mediasvc.stack", ("mediasvc.web",)) == []


def test_flows_take_no_http() -> None:
    """`flows/` imports neither aiohttp nor `web` nor the HTTP intake (`ingest`)."""
    assert breaches("mediasvc.flows", ("aiohttp", "mediasvc.web", "mediasvc.ingest")) == []


def test_metrics_is_a_leaf_others_report_into() -> None:
    """`metrics` imports no other module of the package."""
    assert not {m for m in imports()["mediasvc.metrics"] if m.startswith("mediasvc")}


def test_events_know_nothing_of_the_web_layer() -> None:
    """`events/` imports nothing of `web`: an event's body is not an HTTP response's."""
    assert breaches("mediasvc.events", ("mediasvc.web",)) == []


def test_operator_commands_take_no_http() -> None:
    """`ops/` (storage copy, verify, backup, restore) runs from the shell over the database
    and the storage: nothing of aiohttp, `web` or the HTTP intake."""
    assert breaches("mediasvc.ops", ("aiohttp", "mediasvc.web", "mediasvc.ingest")) == []


def test_no_module_finds_files_through_its_own_path() -> None:
    """No module reads `__file__`: the package's data (migrations, nginx templates, the page)
    is found with `importlib.resources`, so an installed wheel finds it as a checkout does,
    and nothing reaches out of the package into a checkout."""
    reading = sorted(
        name
        for name, path in modules().items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Name) and node.id == "__file__"
    )
    assert reading == []
