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
