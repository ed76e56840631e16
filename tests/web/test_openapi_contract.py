"""The OpenAPI document as a contract (issue 21 "An OpenAPI document you can build on";
issue 22 items 12 and 14): operation ids, the bearer scheme, exactly the error
statuses an operation can answer with the shared Problem schema, examples that
validate, problem types that resolve to a documented page, /docs and /redoc served
offline under a CSP, 405 with a complete Allow, documented bounds equal to enforced
ones. The dynamic half (every status the code answers is documented) is the
schemathesis run, tests/contract/run_schemathesis.py, in .ci/run."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import jsonschema_rs
import pytest

from service.app import create_app
from service.auth.principals import Role
from service.errors import AccordError
from service.settings import Settings
from service.web.docs_pages import STATIC
from service.web.operation_ids import OPERATION_IDS
from service.web.problem_types import BY_SLUG
from tests.support.world import World

ROOT = Path(__file__).resolve().parents[2]
OPERATION_ID = re.compile(r"^[a-z]+(?:_[a-z]+)+$")
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def bare_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An app without its lifespan: enough for the document and the pages (no database)."""
    keys = tmp_path_factory.mktemp("keys")
    return create_app(
        Settings(environment="test", key_dir=keys, page_size_default=5, page_size_max=7)
    )


@pytest.fixture(scope="module")
def spec(bare_app: Any) -> dict[str, Any]:
    document: dict[str, Any] = bare_app.openapi()
    return document


@pytest.fixture
async def bare_client(bare_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=bare_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://accord.test") as http:
        yield http


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method in METHODS:
                yield method, path, operation


def _validator(schema: dict[str, Any], spec: dict[str, Any]) -> Any:
    return jsonschema_rs.validator_for({**schema, "components": spec["components"]})


def test_operation_ids_have_the_form_and_are_unique(spec: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _m, _p, operation in _operations(spec)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert [i for i in ids if not OPERATION_ID.match(i)] == []
    named = set(OPERATION_IDS.values())
    unnamed = [
        f"{m.upper()} {p}"
        for m, p, operation in _operations(spec)
        if p.startswith("/v1/") and operation["operationId"] not in named
    ]
    assert unnamed == [], "name these in service/web/operation_ids.py"
    deliver = spec["paths"]["/v1/referrals/{referral_id}/deliver"]["post"]
    assert deliver["operationId"] == "referrals_deliver"


def test_bearer_scheme_is_required_exactly_where_a_token_is_read(spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for method, path, operation in _operations(spec):
        secured = operation.get("security") == [{"bearerAuth": []}]
        assert secured == ("401" in operation["responses"] and not path.startswith("/s/")), (
            method,
            path,
        )
    assert "security" not in spec["paths"]["/healthz"]["get"]
    assert "security" in spec["paths"]["/v1/referrals"]["post"]


def test_error_responses_are_problems_and_only_those_the_shape_allows(
    spec: dict[str, Any],
) -> None:
    problem = _validator({"$ref": "#/components/schemas/Problem"}, spec)
    for method, path, operation in _operations(spec):
        errors = {int(c): r for c, r in operation["responses"].items() if int(c) >= 400}
        assert errors, (method, path)
        assert 500 not in errors, (method, path)
        if method == "get":  # no body: the guard cannot answer 413 or 415
            assert not {413, 415} & set(errors), (method, path)
        if "security" not in operation and not path.startswith("/s/"):
            assert not {401, 403} & set(errors), (method, path)
        if path.startswith("/s/"):
            continue
        for code, response in errors.items():
            media = response["content"]["application/problem+json"]
            assert media["schema"] == {"$ref": "#/components/schemas/Problem"}
            problem.validate(media["example"])
            assert media["example"]["status"] == code
    item = spec["components"]["schemas"]["ProblemItem"]
    assert item["required"] == ["path", "message"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    health = spec["paths"]["/healthz"]["get"]["responses"]
    assert set(health) == {"200", "400", "431"}
    deliver = spec["paths"]["/v1/referrals/{referral_id}/deliver"]["post"]["responses"]
    assert {"401", "404", "409", "422", "503"} <= set(deliver)


def test_every_json_body_and_main_response_has_a_valid_example(spec: dict[str, Any]) -> None:
    checked = 0
    for method, path, operation in _operations(spec):
        body = operation.get("requestBody", {}).get("content", {})
        ok = [r.get("content", {}) for c, r in operation["responses"].items() if c[0] == "2"]
        for content in [body, *ok]:
            media = content.get("application/json")
            if media is None:
                continue
            assert "example" in media, (method, path)
            _validator(media["schema"], spec).validate(media["example"])
            checked += 1
    assert checked > 60


def test_documented_limit_follows_the_settings(spec: dict[str, Any]) -> None:
    """Issue 22 item 14: the maximum is the setting (7 here), on every operation."""
    limits = [
        parameter
        for _m, _p, operation in _operations(spec)
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "limit"
    ]
    assert len(limits) >= 5
    for parameter in limits:
        schema = parameter["schema"]
        integer = next(s for s in schema.get("anyOf", [schema]) if s.get("type") == "integer")
        assert (integer["minimum"], integer["maximum"]) == (1, 7), parameter


def _error_classes() -> Iterator[type[AccordError]]:
    pending: list[type[AccordError]] = [AccordError]
    while pending:
        cls = pending.pop()
        yield cls
        pending += cls.__subclasses__()


def test_every_problem_type_is_registered_and_documented(bare_app: Any) -> None:
    docs = (ROOT / "docs" / "problems.md").read_text()
    for cls in _error_classes():
        entry = BY_SLUG.get(cls.type_slug)
        assert entry is not None, f"{cls.__name__}: add {cls.type_slug} to problem_types.py"
        assert (entry.status, entry.title) == (cls.status, cls.title), cls
        assert f"`/problems#{cls.type_slug}`" in docs, f"docs/problems.md lacks {cls.type_slug}"


async def test_a_problem_type_resolves_to_its_entry(bare_client: httpx.AsyncClient) -> None:
    response = await bare_client.get("/v1/no-such-thing")
    assert response.status_code == 404
    problem_type = response.json()["type"]
    assert problem_type == "/problems#not-found"
    page = await bare_client.get(urljoin(str(response.url), problem_type))
    assert page.status_code == 200
    for slug in BY_SLUG:
        assert f'id="{slug}"' in page.text


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/problems"])
async def test_docs_pages_load_nothing_from_elsewhere(
    bare_client: httpx.AsyncClient, path: str
) -> None:
    response = await bare_client.get(path)
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "default-src 'none'" in csp
    assert "<script>" not in response.text  # no inline script
    assert not re.search(r"(src|href)=\"(https?:)?//", response.text), response.text
    for asset in re.findall(r"(?:src|href)=\"(/docs-assets/[^\"]+)\"", response.text):
        loaded = await bare_client.get(asset)
        assert loaded.status_code == 200, asset
        assert len(loaded.content) > 100


def test_vendored_assets_are_the_published_files() -> None:
    readme = (STATIC / "README.md").read_text()
    sums = re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.MULTILINE)
    assert len(sums) == 3
    for digest, name in sums:
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/referrals", {"GET", "POST"}),
        ("PATCH", "/v1/organizations", {"GET", "POST"}),
        ("POST", f"/v1/organizations/{'0' * 8}-0000-4000-8000-{'0' * 12}", {"GET"}),
        ("DELETE", "/healthz", {"GET"}),
        (
            "PUT",
            f"/v1/organizations/{'1' * 8}-0000-4000-8000-{'0' * 12}/webhooks/"
            f"{'2' * 8}-0000-4000-8000-{'0' * 12}",
            {"GET", "PATCH", "DELETE"},
        ),
    ],
)
async def test_405_allow_names_every_method_of_the_path(
    bare_client: httpx.AsyncClient, method: str, path: str, allow: set[str]
) -> None:
    """Issue 22 item 12: the router answered from the first route whose path matched."""
    response = await bare_client.request(method, path)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == allow
    assert response.json()["type"] == "/problems#method-not-allowed"


_PRINCIPALS = (
    ("vsp", (Role.caseworker, Role.supervisor, Role.org_admin)),
    ("police", (Role.investigator,)),
    ("oversight", (Role.auditor,)),
    ("platform", (Role.platform_admin,)),
)


async def test_documented_bounds_are_the_enforced_ones(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    """Issue 22 item 14: for every list operation without path parameters, each bounded
    query parameter is accepted at its documented bound and refused (422) past it."""
    from service.web.openapi_examples import example_of

    spec = app.openapi()
    components = spec["components"]["schemas"]
    checked = []
    for method, path, operation in _operations(spec):
        if method != "get" or "{" in path or not path.startswith("/v1/"):
            continue
        parameters = [p for p in operation.get("parameters", []) if p["in"] == "query"]
        base = {
            p["name"]: example_of(p["schema"], components, p["name"])
            for p in parameters
            if p.get("required")
        }
        allowed = None
        for org, roles in _PRINCIPALS:
            headers = world.headers(org, *roles)
            if (await client.get(path, params=base, headers=headers)).status_code == 200:
                allowed = headers
                break
        if allowed is None:
            continue
        for parameter in parameters:
            schema = parameter["schema"]
            kinds = {"integer", "string"}
            typed = next((s for s in schema.get("anyOf", [schema]) if s.get("type") in kinds), {})
            name = parameter["name"]
            if typed.get("type") == "integer" and "maximum" in typed:
                bound, past = typed["maximum"], typed["maximum"] + 1
            elif typed.get("type") == "string" and "maxLength" in typed and "pattern" not in typed:
                bound, past = "a" * typed["maxLength"], "a" * (typed["maxLength"] + 1)
                if name == "cursor":
                    bound = ""  # any non-empty cursor is refused as forged (400)
            else:
                continue
            at = await client.get(path, params={**base, name: bound}, headers=allowed)
            over = await client.get(path, params={**base, name: past}, headers=allowed)
            assert at.status_code != 422, (path, name, bound, at.text)
            assert over.status_code == 422, (path, name, past, over.text)
            checked.append((path, name))
    assert ("/v1/referrals", "limit") in checked
    assert ("/v1/audit/entries", "limit") in checked
    assert ("/v1/events", "limit") in checked
