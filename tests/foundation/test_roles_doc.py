"""docs/roles.md agrees with the code: every /v1 route is on the page once, and the
roles the page names are those the code lets in.

Two sources of truth for the roles: the route's own dependencies (`require_role`,
service/auth/dependencies.py), which no role outside them gets past, and the B01
authorization matrix (tests/security/test_B01_authorization_matrix.py), which checks
the exact allowed roles of its endpoints against the running service.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute

from service.auth.principals import Role
from service.web.middleware import app_routes
from tests.security.test_B01_authorization_matrix import TABLE

PAGE = Path(__file__).resolve().parents[2] / "docs" / "roles.md"
ROW = re.compile(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \| ([^|]+) \|", re.MULTILINE)
ANY = "any role"


def page_rows() -> dict[tuple[str, str], frozenset[Role]]:
    rows: dict[tuple[str, str], frozenset[Role]] = {}
    for method, path, who in ROW.findall(PAGE.read_text(encoding="utf-8")):
        assert (method, path) not in rows, f"{method} {path} is on the page twice"
        who = who.strip()
        roles = (
            frozenset(Role)
            if who == ANY
            else frozenset(Role(r) for r in re.findall(r"`(\w+)`", who))
        )
        assert roles, f"{method} {path}: no role named ({who!r})"
        rows[(method, path)] = roles
    return rows


def gate_roles(dependant: Any) -> frozenset[Role] | None:
    """The roles a route's `require_role` dependencies let through (None: no such gate)."""
    found: frozenset[Role] | None = None
    for dep in dependant.dependencies:
        call = dep.call
        if getattr(call, "__qualname__", "").startswith("require_role."):
            for cell in call.__closure__ or ():
                value = cell.cell_contents
                if isinstance(value, tuple) and all(isinstance(r, Role) for r in value):
                    roles = frozenset(value)
                    found = roles if found is None else found & roles
        inner = gate_roles(dep)
        if inner is not None:
            found = inner if found is None else found & inner
    return found


def v1_routes(app: Any) -> dict[tuple[str, str], APIRoute]:
    return {
        (method, path): route
        for route, path, methods in app_routes(app)
        if isinstance(route, APIRoute) and path.startswith("/v1/") and "/_bench/" not in path
        for method in methods
    }


def test_the_roles_page_lists_every_v1_route_once(app: Any) -> None:
    rows, routes = page_rows(), v1_routes(app)
    assert sorted(set(routes) - set(rows)) == [], "routes missing from docs/roles.md"
    assert sorted(set(rows) - set(routes)) == [], "docs/roles.md lists routes that do not exist"


def test_the_roles_page_names_only_roles_the_route_lets_in(app: Any) -> None:
    rows, routes = page_rows(), v1_routes(app)
    wrong = []
    for key, route in routes.items():
        gate = gate_roles(route.dependant)
        if gate is not None and key in rows and not rows[key] <= gate:
            wrong.append((key, sorted(rows[key] - gate)))
    assert not wrong, f"docs/roles.md names roles the route refuses: {wrong}"


def test_the_roles_page_matches_the_authorization_matrix() -> None:
    rows = page_rows()
    wrong = [
        (e.method, e.template, sorted(rows.get((e.method, e.template), ())), sorted(e.allowed))
        for e in TABLE
        if rows.get((e.method, e.template)) != frozenset(e.allowed)
    ]
    assert not wrong, f"(method, path, page, matrix): {wrong}"
