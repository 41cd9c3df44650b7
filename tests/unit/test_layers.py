"""The layering of app/ (docs: ../shared/STYLE.md, "Services know nothing of
the web"), checked on the import statements so a shortcut fails a test rather
than a review: services and domain errors import no web framework, and the
blueprints share code through the layers below, never by importing each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"

#: Blueprint packages; app.auth.guards is the cross-cutting access layer every
#: blueprint may use.
BLUEPRINTS = ("admin", "api", "auth", "dashboard", "exports", "operations", "problems")
SHARED = ("app.auth.guards",)
WEB = ("flask", "flask_login", "flask_wtf", "werkzeug", "app.web")
#: Werkzeug's password hashing is a hashing helper that knows no request.
NOT_WEB = ("werkzeug.security",)


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize(
    "path", [APP / "errors.py", *sorted((APP / "services").rglob("*.py"))], ids=lambda p: str(p.relative_to(APP))
)
def test_services_and_domain_errors_import_no_web_module(path):
    assert sorted(m for m in imported_modules(path) if under(m, WEB) and not under(m, NOT_WEB)) == []


@pytest.mark.parametrize("blueprint", BLUEPRINTS)
def test_blueprints_do_not_import_each_other(blueprint):
    others = tuple(f"app.{b}" for b in BLUEPRINTS if b != blueprint)
    found = {
        (str(path.relative_to(APP)), module)
        for path in sorted((APP / blueprint).rglob("*.py"))
        for module in imported_modules(path)
        if under(module, others) and not under(module, SHARED)
    }
    assert found == set()


def _module_path(module: str) -> Path | None:
    """The file of an ``app`` module (``None`` for third-party modules)."""
    if module != "app" and not module.startswith("app."):
        return None
    base = APP.parent.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _reached(path: Path) -> dict[str, list[str]]:
    """Every module ``path`` imports, directly or through other app modules,
    with the chain that reaches it. The ``app`` package itself (the factory)
    is left out: Python runs it for any ``app.*`` import whatever the layers."""
    chains: dict[str, list[str]] = {}
    todo = [(path, [])]
    while todo:
        current, chain = todo.pop()
        for module in sorted(imported_modules(current)):
            parts = module.split(".")
            # Importing app.a.b runs app.a's __init__ too.
            for depth in range(2 if parts[0] == "app" else len(parts), len(parts) + 1):
                name = ".".join(parts[:depth])
                if name in chains:
                    continue
                chains[name] = [*chain, name]
                found = _module_path(name)
                if found is not None:
                    todo.append((found, chains[name]))
    return chains


@pytest.mark.parametrize(
    "path", [APP / "errors.py", *sorted((APP / "services").rglob("*.py"))], ids=lambda p: str(p.relative_to(APP))
)
def test_services_reach_no_web_module_through_other_modules(path):
    chains = _reached(path)
    web = {name: chain for name, chain in chains.items() if under(name, WEB) and not under(name, NOT_WEB)}
    assert web == {}
