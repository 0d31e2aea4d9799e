"""The layers read one way (DESIGN.md, "Layout and the layers"), checked on the source itself.

canonical_model ← hub core ← connectors ← hub.rules ← entry points (CLI, web, demo) and
pipelines. Every ``import`` statement of every module is read with ``ast`` (including
imports inside functions), so a lazy import cannot slip past; the registry's
``importlib`` is the one sanctioned way from the core to a connector.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = ("hub.cli", "hub.web", "hub.demo", "hub.__main__")
RULES = ("hub.rules",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations/versions" not in p.as_posix())


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in ``path``, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:  # "from hub import rules" imports hub.rules
                yield node.lineno, f"{base}.{alias.name}"


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(paths: list[Path], forbidden: tuple[str, ...], allow: tuple[str, ...] = ()) -> list[str]:
    found = []
    for path in paths:
        for line, name in imported(path):
            if within(name, forbidden) and not within(name, allow):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return found


def is_core(path: Path) -> bool:
    return not within(module_name(path), (*ENTRY_POINTS, *RULES))


def is_sandbox(path: Path) -> bool:
    return "sandbox" in path.relative_to(ROOT).parts


def test_canonical_model_imports_nothing_of_the_hub():
    assert violations(modules("canonical_model"), ("hub", "connectors", "pipelines")) == []


def test_the_core_imports_no_connector_rule_entry_point_or_pipeline():
    core = [p for p in modules("hub") if is_core(p)]
    assert len(core) > 10
    assert violations(core, ("connectors", "pipelines", *RULES, *ENTRY_POINTS)) == []


def test_connectors_import_no_rules_entry_points_or_pipelines():
    assert violations(modules("connectors"), ("pipelines", *RULES, *ENTRY_POINTS)) == []


def test_rules_import_no_entry_point_or_pipeline():
    rules = [p for p in modules("hub") if within(module_name(p), RULES)]
    assert rules
    assert violations(rules, ("pipelines", *ENTRY_POINTS)) == []


def test_production_code_imports_no_sandbox():
    # sandboxes are named by module path in the registry and loaded only in sandbox mode
    production = [p for p in [*modules("hub"), *modules("connectors"), *modules("pipelines")] if not is_sandbox(p)]
    sandboxes = ("connectors.kit.sandbox", *(f"connectors.{d.name}.sandbox" for d in (ROOT / "connectors").iterdir()))
    assert violations(production, sandboxes) == []


# A mapping is a pure function: these are all it may import.
PURE = ("__future__", "collections", "dataclasses", "datetime", "decimal", "enum", "functools", "hashlib", "html",
        "itertools", "json", "connectors.kit.fields", "connectors.kit.orders",
        "math", "re", "string", "typing", "unicodedata", "zoneinfo", "pydantic", "canonical_model", "hub.identity")


@pytest.mark.parametrize("mapping", sorted((ROOT / "connectors").glob("*/mapping.py")), ids=lambda p: p.parent.name)
def test_mappings_do_no_io(mapping: Path):
    own = f"connectors.{mapping.parent.name}"
    bad = [f"{line}: {name}" for line, name in imported(mapping) if not within(name, (*PURE, own))]
    assert bad == []
    calls = {n.func.id for n in ast.walk(ast.parse(mapping.read_text())) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Name)}
    assert not calls & {"open", "print", "input", "exec", "eval"}


def test_the_layer_check_sees_a_violation():
    # the checker itself must be able to fail: a core module importing a rule is found
    sample = ROOT / "hub" / "runtime.py"
    assert violations([sample], ("hub.registry",)) != []
