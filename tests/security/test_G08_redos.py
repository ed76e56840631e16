"""G08: ReDoS. A 50 KB adversarial string in any regex-validated input of the HTTP API is
refused with 422 and an RFC 9457 problem (O-no5xx), quickly, without echoing the string,
and changes nothing (O-unchanged).

Timing. The row asks for each response under 200 ms. These tests run on shared, noisy
machines and the project allows no tight timed assertions, so each request's wall time
is measured and held to BOUND_SECONDS (2 s): a normal refusal takes milliseconds, while
catastrophic backtracking on 50 KB takes minutes or never ends. The times include the
client's own handling of a 50 KB URL or body. The worst time per field is recorded as the
test's user property `worst_seconds` (in `--junitxml` output): that is where the 200 ms
target is read, not asserted.

The regex-validated inputs, by the engine that runs the pattern.

pydantic `pattern`: pydantic-core compiles it with the Rust `regex` crate (finite
automata, linear time, never backtracks). That is pydantic's default
`regex_engine="rust-regex"`, and no request model overrides it
(test_G08_request_models_use_the_rust_regex_engine). pydantic checks `max_length`
before the pattern.
- BCP 47 tag `^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,6}$`, max_length 35:
  ConsentCreate.language (POST /v1/subjects/{subject_id}/consents) and
  AvailabilityUpdate.languages[] (PUT /v1/organizations/{org_id}/availability).
- SHA-256 hex `^[0-9a-f]{64}$`: AgreementInput.document_sha256, with max_length 64
  (POST /v1/collaborations, PUT /v1/collaborations/{collab_id}/agreement). The following
  have no length limit, so the regex reads all 50 KB: ConsentCreate.evidence_sha256 and
  .giver_ref, AllegedAbuserCreate.person_ref (POST /v1/subjects/{subject_id}/alleged-abusers),
  RecordsRequestCreate.document_sha256 (POST /v1/records-requests) and
  SuspensionCreate.document_sha256 (POST /v1/records-requests/{request_id}/suspension).
- Outcome code `^[a-z][a-z0-9_]{0,63}$`, no length limit: CloseRequest.outcome
  (POST /v1/referrals/{referral_id}/close).
- Subject reference `^[A-Za-z0-9][A-Za-z0-9._:/-]*$`, max_length 200:
  RecordsRequestCreate.subject_ref.
  (service/records_requests/schemas.py also defines a CODE pattern that no field uses.)

UUIDs: pydantic-core's UUID parser (the Rust `uuid` crate, no regex).
- All 32 path parameters of the API are UUIDs. test_G08_uuid_path_parameters reads them
  from the app's routes. Before that, Starlette's route regexes (Python `re`, one anchored
  `[^/]+` per segment, so linear time) match the path.
- Body fields: ConsentCreate.recipients[] and .supersedes, ExplainRequest.recipient_org_id,
  HypotheticalConsent.recipients[], MemberAdd.org_id, CollaborationCreate.members[],
  RecordsRequestCreate.holder_org_id, ReferralCreate.subject_id, .recipient_org_id and
  .consent_id, RespondRequest.consent_id.

Python `re` (a backtracking engine), reached from the API.
- accord_client.envelope_parse, on the `envelope` of POST /v1/referrals and
  POST /v1/records-requests/{request_id}/respond. Each is applied with fullmatch, after a
  64-character length check:
  - NAME_PATTERN `[a-z][a-z0-9_]*`: context.purpose, fields[].name and fields[].category.
  - UUID_PATTERN: sender_org, recipient_org, and context.subject_id, consent_id and
    request_id.
  - KEY_ID_PATTERN `[0-9a-f]{32}`: sender_key_id and recipient_key_id.
- accord_client.strict_json._PRINTABLE_KEY `[A-Za-z0-9_]{1,64}` (fullmatch): every unknown
  key of an envelope object, of any length (it decides whether the key may be echoed in
  a problem path).
- service.policy.loader.POLICY_ID `[a-z0-9][a-z0-9-]{0,79}` (fullmatch): the @id
  annotation of each statement sent to PUT /v1/organizations/{org_id}/policy. That text is
  at most 64 KB, and Cedar's Rust parser reads it first.
- service.policy.engine._ERROR_POLICY "policy `([^`]*)`" (search): runs on Cedar's
  evaluation error messages, not directly on request input, so it has only a unit check.
None of these patterns has nested or overlapping quantifiers. Each is linear (or bounded)
even with backtracking, and the unit checks at the end run them on 50 KB inputs without
the length checks in front.

Length-bounded but not regex-validated, tested as well: the directory's BCP 47 filter
(GET /v1/organizations?language=, max_length 35, no pattern).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import httpx
import pytest
from accord_client import envelope_format, envelope_parse, strict_json
from fastapi.dependencies.models import Dependant
from pydantic import StringConstraints, TypeAdapter, ValidationError
from pydantic_core import SchemaError

from service.auth.principals import Role
from service.policy import engine as policy_engine
from service.policy import loader as policy_loader
from service.schemas import StrictInput
from service.web.middleware import app_routes
from tests.records_requests.support import make_request_kit
from tests.referrals.support import make_kit
from tests.support.databases import TestDatabase
from tests.support.factories import grant_body, new_consent
from tests.support.world import World

pytestmark = pytest.mark.security

SIZE = 50 * 1024
BOUND_SECONDS = 2.0
PROBLEM_JSON = "application/problem+json"


def _fill(unit: str, *, head: str = "", tail: str = "") -> str:
    """`head`, then `unit` repeated, then `tail`: exactly SIZE characters."""
    room = SIZE - len(head) - len(tail)
    return head + (unit * (room // len(unit) + 1))[:room] + tail


# Shapes built for each pattern: long runs that almost match and then fail at the last
# character (what makes a backtracking engine retry every split), repeated groups, and
# values that are valid except for their length.
SHAPES: dict[str, dict[str, str]] = {
    "bcp47": {
        "subtags-then-bang": _fill("a-", tail="!"),
        "max-width-subtags": _fill("-abcdefgh", head="en", tail="-"),
        "ambiguous-alnum-run": _fill("a1", head="en-", tail="!"),
        "letters-only": _fill("a"),
    },
    "sha256": {
        "hex-then-non-hex": _fill("0", tail="g"),
        "hex-then-newline": _fill("f", tail="\n"),
        "all-hex": _fill("a"),
        "uppercase-hex": _fill("A"),
    },
    "uuid": {
        "long-last-group": _fill("0", head="00000000-0000-0000-0000-"),
        "repeated-groups": _fill("00000000-", tail="x"),
        "hex-run": _fill("f", tail="g"),
        "urn-prefix": _fill("0", head="urn:uuid:"),
        "braced": _fill("0", head="{", tail="}"),
    },
    "code": {
        "letters-then-bang": _fill("a", tail="!"),
        "underscores-then-upper": _fill("_", head="a", tail="A"),
        "alnum-then-dash": _fill("a0", tail="-"),
    },
    "subject_ref": {
        "ref-chars-then-space": _fill("a.", tail=" "),
        "separators-then-nul": _fill("/:-", head="a", tail="\x00"),
        "all-valid-characters": _fill("A"),
    },
    "key": {
        "printable-too-long": _fill("a_"),
        "printable-then-bang": _fill("a", tail="!"),
    },
}


def _assert_refused(
    response: httpx.Response,
    elapsed: float,
    label: str,
    *,
    value: str | None = None,
    status: int = 422,
) -> None:
    assert response.status_code < 500, f"{label}: {response.status_code} (O-no5xx)"
    assert response.status_code == status, f"{label}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"] == PROBLEM_JSON, label
    problem = response.json()
    assert {"type", "title", "status"} <= set(problem), label
    assert problem["status"] == status, label
    assert elapsed < BOUND_SECONDS, f"{label}: {elapsed:.3f} s"
    if value is not None:
        assert value not in response.text, f"{label}: the input is echoed"


def _error_paths(response: httpx.Response) -> list[str]:
    return [str(e["path"]) for e in response.json().get("errors", [])]


def _record(request: pytest.FixtureRequest, name: str, value: object) -> None:
    """A junit property (what `record_property` does, without its warning under the
    xunit2 format, which `filterwarnings = error` would turn into a failure)."""
    request.node.user_properties.append((name, value))


async def _timed(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await client.request(method, url, **kwargs)
    return response, time.perf_counter() - started


# Request bodies -----------------------------------------------------------------------


def _any_id() -> str:
    return str(uuid.uuid4())


def _agreement(world: World, document_sha256: str) -> dict[str, Any]:
    now = world.clock.now()
    return {
        "flows": [
            {
                "from_sector": "victim_services",
                "to_sector": "shelter",
                "purposes": ["services_referral"],
                "categories": ["contact"],
            }
        ],
        "effective_from": (now - timedelta(days=1)).isoformat(),
        "document_sha256": document_sha256,
    }


def _records_request(world: World, **change: str) -> dict[str, Any]:
    body = {
        "holder_org_id": str(world.orgs["vsp"]),
        "subject_ref": "REF-2026-0042",
        "categories": ["identity"],
        "purpose": "investigation",
        "legal_basis": "court_order",
        "legal_reference": "2026-CR-0042",
        "document_sha256": "ab" * 32,
        "justification": "Witness in a labor trafficking investigation",
    }
    return {**body, **change}


def _referral(world: World, **change: str) -> dict[str, Any]:
    body = {
        "subject_id": _any_id(),
        "recipient_org_id": str(world.orgs["shelter"]),
        "consent_id": _any_id(),
        "purpose": "services_referral",
        "envelope": {},
    }
    return {**body, **change}


def _explain(world: World, **change: Any) -> dict[str, Any]:
    body = {
        "recipient_org_id": str(world.orgs["shelter"]),
        "purpose": "services_referral",
        "legal_basis": "consent",
        "categories": ["contact"],
    }
    return {**body, **change}


def _hypothetical_consent(world: World, recipient: str) -> dict[str, Any]:
    return {
        "recipients": [recipient],
        "purposes": ["services_referral"],
        "categories": ["contact"],
        "expires_at": (world.clock.now() + timedelta(days=30)).isoformat(),
    }


AVAILABILITY = {
    "accepting_referrals": True,
    "capacity": 3,
    "hours": "24/7",
    "services": ["emergency_shelter"],
    "populations": ["adults"],
}


@dataclass(frozen=True)
class Case:
    """One regex-validated input: where it goes and what refusing it looks like."""

    field: str  # the OpenAPI schema and property ("ConsentCreate.language")
    family: str  # the key of SHAPES
    method: str
    template: str
    org: str
    roles: tuple[Role, ...]
    error_path: str  # the problem's `errors[].path` naming the field
    body: Callable[[World, str], dict[str, Any]] | None = None
    query: str | None = None  # a query parameter instead of a body

    def path(self, world: World) -> str:
        """The caller's own organization and the task force; a random id for anything
        else (the body is validated before any object is looked up)."""
        known = {"org_id": str(world.orgs[self.org]), "collab_id": str(world.collaboration_id)}
        names = re.findall(r"{(\w+)}", self.template)
        return self.template.format(**{n: known.get(n) or _any_id() for n in names})

    def __str__(self) -> str:
        return f"{self.field}@{self.method} {self.template}"


CASEWORKER = (Role.caseworker,)
CONSENTS = "/v1/subjects/{subject_id}/consents"
RECORDS = "/v1/records-requests"
REFERRALS = "/v1/referrals"
EXPLAIN = "/v1/policies/explain"

CASES: tuple[Case, ...] = (
    # BCP 47 tags.
    Case(
        template=CONSENTS,
        field="ConsentCreate.language",
        family="bcp47",
        method="POST",
        org="vsp",
        roles=CASEWORKER,
        error_path="/language",
        body=lambda w, v: grant_body(w, language=v),
    ),
    Case(
        template="/v1/organizations/{org_id}/availability",
        field="AvailabilityUpdate.languages[]",
        family="bcp47",
        method="PUT",
        org="vsp",
        roles=(Role.org_admin,),
        error_path="/languages/1",
        body=lambda w, v: {**AVAILABILITY, "languages": ["en", v]},
    ),
    Case(
        template="/v1/organizations",
        field="query:language",
        family="bcp47",
        method="GET",
        org="vsp",
        roles=CASEWORKER,
        error_path="query:/language",
        query="language",
    ),
    # SHA-256 hex.
    Case(
        template="/v1/collaborations",
        field="AgreementInput.document_sha256",
        family="sha256",
        method="POST",
        org="platform",
        roles=(Role.platform_admin,),
        error_path="/agreement/document_sha256",
        body=lambda w, v: {"name": "G08 task force", "agreement": _agreement(w, v)},
    ),
    Case(
        template="/v1/collaborations/{collab_id}/agreement",
        field="AgreementInput.document_sha256",
        family="sha256",
        method="PUT",
        org="platform",
        roles=(Role.platform_admin,),
        error_path="/document_sha256",
        body=_agreement,
    ),
    Case(
        template=CONSENTS,
        field="ConsentCreate.evidence_sha256",
        family="sha256",
        method="POST",
        org="vsp",
        roles=CASEWORKER,
        error_path="/evidence_sha256",
        body=lambda w, v: grant_body(w, evidence_sha256=v),
    ),
    Case(
        template=CONSENTS,
        field="ConsentCreate.giver_ref",
        family="sha256",
        method="POST",
        org="vsp",
        roles=CASEWORKER,
        error_path="/giver_ref",
        body=lambda w, v: grant_body(w, given_by="parent_or_guardian", giver_ref=v),
    ),
    Case(
        template="/v1/subjects/{subject_id}/alleged-abusers",
        field="AllegedAbuserCreate.person_ref",
        family="sha256",
        method="POST",
        org="vsp",
        roles=CASEWORKER,
        error_path="/person_ref",
        body=lambda w, v: {"person_ref": v},
    ),
    Case(
        template=RECORDS,
        field="RecordsRequestCreate.document_sha256",
        family="sha256",
        method="POST",
        org="police",
        roles=(Role.investigator,),
        error_path="/document_sha256",
        body=lambda w, v: _records_request(w, document_sha256=v),
    ),
    Case(
        template="/v1/records-requests/{request_id}/suspension",
        field="SuspensionCreate.document_sha256",
        family="sha256",
        method="POST",
        org="police",
        roles=(Role.investigator,),
        error_path="/document_sha256",
        body=lambda w, v: {
            "document_sha256": v,
            "until": (w.clock.now() + timedelta(days=30)).isoformat(),
        },
    ),
    # Codes and references.
    Case(
        template="/v1/referrals/{referral_id}/close",
        field="CloseRequest.outcome",
        family="code",
        method="POST",
        org="vsp",
        roles=CASEWORKER,
        error_path="/outcome",
        body=lambda w, v: {"outcome": v},
    ),
    Case(
        template=RECORDS,
        field="RecordsRequestCreate.subject_ref",
        family="subject_ref",
        method="POST",
        org="police",
        roles=(Role.investigator,),
        error_path="/subject_ref",
        body=lambda w, v: _records_request(w, subject_ref=v),
    ),
    # UUIDs in bodies.
    Case(
        template=CONSENTS,
        field="ConsentCreate.recipients[]",
        family="uuid",
        method="POST",
        org="vsp",
        roles=CASEWORKER,
        error_path="/recipients/0",
        body=lambda w, v: grant_body(w, recipients=[v]),
    ),
    Case(
        template=CONSENTS,
        field="ConsentCreate.supersedes",
        family="uuid",
        method="POST",
        org="vsp",
        roles=CASEWORKER,
        error_path="/supersedes",
        body=lambda w, v: grant_body(w, supersedes=v),
    ),
    Case(
        template=EXPLAIN,
        field="ExplainRequest.recipient_org_id",
        family="uuid",
        method="POST",
        org="vsp",
        roles=CASEWORKER,
        error_path="/recipient_org_id",
        body=lambda w, v: _explain(w, recipient_org_id=v),
    ),
    Case(
        template=EXPLAIN,
        field="HypotheticalConsent.recipients[]",
        family="uuid",
        method="POST",
        org="vsp",
        roles=CASEWORKER,
        error_path="/consent/recipients/0",
        body=lambda w, v: _explain(w, consent=_hypothetical_consent(w, v)),
    ),
    Case(
        template="/v1/collaborations",
        field="CollaborationCreate.members[]",
        family="uuid",
        method="POST",
        org="platform",
        roles=(Role.platform_admin,),
        error_path="/members/0",
        body=lambda w, v: {
            "name": "G08 task force",
            "agreement": _agreement(w, "ab" * 32),
            "members": [v],
        },
    ),
    Case(
        template="/v1/collaborations/{collab_id}/members",
        field="MemberAdd.org_id",
        family="uuid",
        method="POST",
        org="platform",
        roles=(Role.platform_admin,),
        error_path="/org_id",
        body=lambda w, v: {"org_id": v},
    ),
    Case(
        template=RECORDS,
        field="RecordsRequestCreate.holder_org_id",
        family="uuid",
        method="POST",
        org="police",
        roles=(Role.investigator,),
        error_path="/holder_org_id",
        body=lambda w, v: _records_request(w, holder_org_id=v),
    ),
    Case(
        template=REFERRALS,
        field="ReferralCreate.subject_id",
        family="uuid",
        method="POST",
        org="vsp",
        roles=CASEWORKER,
        error_path="/subject_id",
        body=lambda w, v: _referral(w, subject_id=v),
    ),
    Case(
        template=REFERRALS,
        field="ReferralCreate.recipient_org_id",
        family="uuid",
        method="POST",
        org="vsp",
        roles=CASEWORKER,
        error_path="/recipient_org_id",
        body=lambda w, v: _referral(w, recipient_org_id=v),
    ),
    Case(
        template=REFERRALS,
        field="ReferralCreate.consent_id",
        family="uuid",
        method="POST",
        org="vsp",
        roles=CASEWORKER,
        error_path="/consent_id",
        body=lambda w, v: _referral(w, consent_id=v),
    ),
    Case(
        template="/v1/records-requests/{request_id}/respond",
        field="RespondRequest.consent_id",
        family="uuid",
        method="POST",
        org="vsp",
        roles=CASEWORKER,
        error_path="/consent_id",
        body=lambda w, v: {"decision": "release", "consent_id": v, "envelope": {}},
    ),
)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_G08_regex_validated_field_refuses_50kb_adversarial_input(
    case: Case,
    client: httpx.AsyncClient,
    world: World,
    db: TestDatabase,
    request: pytest.FixtureRequest,
) -> None:
    headers = world.headers(case.org, *case.roles)

    async def send(value: str) -> tuple[httpx.Response, float]:
        if case.query is not None:
            params = {case.query: value}
            return await _timed(
                client, case.method, case.path(world), params=params, headers=headers
            )
        assert case.body is not None
        body = case.body(world, value)
        return await _timed(client, case.method, case.path(world), json=body, headers=headers)

    before = db.dump()
    # Untimed warm-up with a short value: the first request of an app pays one-off costs.
    warm_up, _ = await send("!")
    assert warm_up.status_code < 500, warm_up.text
    worst = 0.0
    for shape, value in SHAPES[case.family].items():
        label = f"{case} [{shape}]"
        response, elapsed = await send(value)
        _assert_refused(response, elapsed, label, value=value)
        assert case.error_path in _error_paths(response), f"{label}: {response.text[:300]}"
        worst = max(worst, elapsed)
    _record(request, "worst_seconds", round(worst, 4))
    assert db.dump() == before


async def test_G08_every_regex_or_uuid_body_field_has_a_case(app: Any) -> None:
    """A request field that gains a `pattern` or a UUID format fails here until it has
    a case above."""
    spec = app.openapi()
    schemas = spec["components"]["schemas"]
    request_schemas: set[str] = set()

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    pending = [
        name
        for operations in spec["paths"].values()
        for operation in operations.values()
        for name in refs(operation.get("requestBody", {}))
    ]
    while pending:
        name = pending.pop()
        if name not in request_schemas:
            request_schemas.add(name)
            pending += refs(schemas[name])

    def constrained(node: object, where: str) -> list[str]:
        if isinstance(node, list):
            return [f for v in node for f in constrained(v, where)]
        if not isinstance(node, dict):
            return []
        here = [where] if "pattern" in node or node.get("format") == "uuid" else []
        if "items" in node:
            here += constrained(node["items"], where + "[]")
        return here + constrained(node.get("anyOf", []), where)

    fields = {
        field
        for name in request_schemas
        for prop, node in schemas[name].get("properties", {}).items()
        for field in constrained(node, f"{name}.{prop}")
    }
    covered = {c.field for c in CASES if c.query is None}
    assert fields == covered


# UUID path parameters -----------------------------------------------------------------


SURVIVOR_PAGES = "/s/"
# The oversight page: HTML behind a staff session cookie; a malformed collaboration id
# is the same 404 page as an unknown one (tests/pages/test_oversight_headers.py).
OVERSIGHT_PAGES = "/o/"


def _path_params(dependant: Dependant) -> list[Any]:
    params = list(dependant.path_params)
    for sub in dependant.dependencies:
        params += _path_params(sub)
    return params


async def test_G08_uuid_path_parameters(
    app: Any,
    client: httpx.AsyncClient,
    world: World,
    db: TestDatabase,
    request: pytest.FixtureRequest,
) -> None:
    """Every path parameter of every route, one at a time, with each near-UUID shape:
    422 naming the parameter. A principal with every role, so no role check answers
    first; random UUIDs in the other parameters."""
    # Every role that means something in its sector (docs/threat-model.md P02): law
    # enforcement holds all but platform_admin, which the collaborations need.
    headers = world.headers("police", *Role)
    platform = world.headers("platform", *Role)
    routes: list[tuple[str, str, list[str]]] = []
    for route, template, methods in app_routes(app):
        if template.startswith(SURVIVOR_PAGES):
            continue  # HTML behind a session cookie: their own G08 case, tests/pages/test_scope.py
        if template.startswith(OVERSIGHT_PAGES):
            continue  # HTML behind a staff session cookie: tests/pages/test_oversight_*.py
        dependant = getattr(route, "dependant", None)
        params = _path_params(dependant) if dependant is not None else []
        others = [p.name for p in params if p.field_info.annotation is not uuid.UUID]
        assert not others, f"{template}: a non-UUID path parameter needs its own G08 case"
        names = list(dict.fromkeys(p.name for p in params))
        routes += [(method, template, names) for method in sorted(methods) if names]
    assert len(routes) >= 30, routes  # the sweep really sees the included routers
    before = db.dump()
    warm_up, _ = await _timed(client, "GET", "/v1/referrals/!", headers=headers)
    assert warm_up.status_code == 422, warm_up.text
    worst: dict[str, float] = {}
    for method, template, names in routes:
        for name in names:
            for shape, value in SHAPES["uuid"].items():
                path = template.format(**{n: value if n == name else _any_id() for n in names})
                label = f"{method} {template} {name} [{shape}]"
                caller = platform if template.startswith("/v1/collaborations") else headers
                response, elapsed = await _timed(client, method, path, headers=caller)
                _assert_refused(response, elapsed, label, value=value)
                assert f"path:/{name}" in _error_paths(response), label
                key = f"{method} {template} {name}"
                worst[key] = max(worst.get(key, 0.0), elapsed)
    _record(request, "worst_seconds", round(max(worst.values()), 4))
    for key, seconds in worst.items():
        _record(request, key, round(seconds, 4))
    assert db.dump() == before


# Envelopes: Python `re` in the shared parser ------------------------------------------


def _strings(node: object) -> list[str]:
    """Every string in a JSON tree, keys included."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in [k, *_strings(v)]]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def _envelope_attacks(envelope: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(label, mutated envelope, problem path) for each regex-checked position of a
    valid envelope and each shape of its pattern, plus 50 KB unknown keys."""
    positions = [
        ((), "sender_org", "uuid"),
        ((), "recipient_org", "uuid"),
        ((), "sender_key_id", "sha256"),
        ((), "recipient_key_id", "sha256"),
        (("context",), "subject_id", "uuid"),
        (("context",), "consent_id", "uuid"),
        (("context",), "request_id", "uuid"),
        (("context",), "purpose", "code"),
        (("fields", 0), "name", "code"),
        (("fields", 0), "category", "code"),
    ]
    out = []
    for parents, key, family in positions:
        where = "envelope" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parents)
        for shape, value in SHAPES[family].items():
            mutated = json.loads(json.dumps(envelope))
            target = mutated
            for p in parents:
                target = target[p]
            target[key] = value
            out.append((f"{where}.{key} [{shape}]", mutated, f"{where}.{key}"))
    for parents in [(), ("context",), ("fields", 0)]:
        where = "envelope" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parents)
        for shape, key in SHAPES["key"].items():
            mutated = json.loads(json.dumps(envelope))
            target = mutated
            for p in parents:
                target = target[p]
            target[key] = "x"
            out.append((f"{where}.<key> [{shape}]", mutated, f"{where}.<unprintable key>"))
    return out


async def test_G08_referral_envelope_python_re_fields(
    client: httpx.AsyncClient, world: World, db: TestDatabase, request: pytest.FixtureRequest
) -> None:
    kit = await make_kit(client, world)
    envelope = kit.seal()
    before = db.dump()
    worst = 0.0
    for label, mutated, problem_path in _envelope_attacks(envelope):
        response, elapsed = await _timed(
            client, "POST", "/v1/referrals", json=kit.body(mutated), headers=kit.staff("vsp")
        )
        value = next(v for v in _strings(mutated) if len(v) >= SIZE)
        _assert_refused(response, elapsed, label, value=value)
        assert problem_path in _error_paths(response), f"{label}: {response.text[:300]}"
        worst = max(worst, elapsed)
    _record(request, "worst_seconds", round(worst, 4))
    assert db.dump() == before


async def test_G08_records_answer_envelope_python_re_fields(
    client: httpx.AsyncClient, world: World, db: TestDatabase, request: pytest.FixtureRequest
) -> None:
    kit = await make_request_kit(client, world)
    made = await kit.made()
    subject = await kit.subject()
    consent = await kit.consent(subject, ["identity"])
    envelope = kit.seal(made, subject, {"identity": "Planted Name"}, consent_id=consent)
    before = db.dump()
    worst = 0.0
    for label, mutated, problem_path in _envelope_attacks(envelope):
        body = {"decision": "release", "consent_id": consent, "envelope": mutated}
        response, elapsed = await _timed(
            client,
            "POST",
            f"/v1/records-requests/{made['id']}/respond",
            json=body,
            headers=kit.staff("vsp"),
        )
        value = next(v for v in _strings(mutated) if len(v) >= SIZE)
        _assert_refused(response, elapsed, label, value=value)
        assert problem_path in _error_paths(response), f"{label}: {response.text[:300]}"
        worst = max(worst, elapsed)
    _record(request, "worst_seconds", round(worst, 4))
    assert db.dump() == before


# Organization rules: the @id check is Python `re` -------------------------------------

RULE = """@id("{policy_id}")
@reason("We do not send contact details to shelters.")
forbid (principal, action == Action::"release", resource)
when {{ resource.name == "contact" && principal.recipient_sector == "shelter" }};
"""

POLICY_ID_SHAPES = {
    "id-chars-then-bang": _fill("a-", tail="!"),
    "valid-characters-too-long": _fill("a"),
    "digits-dashes-then-upper": _fill("0-", tail="A"),
}


async def test_G08_org_rule_policy_id(
    client: httpx.AsyncClient, world: World, db: TestDatabase, request: pytest.FixtureRequest
) -> None:
    url = f"/v1/organizations/{world.orgs['vsp']}/policy"
    headers = world.headers("vsp", Role.org_admin)

    async def put(policy_id: str) -> tuple[httpx.Response, float]:
        body = {"cedar": RULE.format(policy_id=policy_id)}
        return await _timed(client, "PUT", url, json=body, headers=headers)

    before = db.dump()
    warm_up, _ = await put("Not-An-Id")
    assert warm_up.status_code == 422, warm_up.text
    worst = 0.0
    for shape, policy_id in POLICY_ID_SHAPES.items():
        response, elapsed = await put(policy_id)
        # The refused @id is named by its statement's position, not echoed.
        _assert_refused(response, elapsed, f"policy @id [{shape}]", value=policy_id)
        assert "/cedar" in _error_paths(response), shape
        worst = max(worst, elapsed)
    _record(request, "worst_seconds", round(worst, 4))
    assert db.dump() == before


async def test_G08_a_valid_org_rule_still_passes(client: httpx.AsyncClient, world: World) -> None:
    """The refusals above are the @id check, not a rule that nothing passes."""
    response = await client.put(
        f"/v1/organizations/{world.orgs['vsp']}/policy",
        json={"cedar": RULE.format(policy_id="no-contact-to-shelters")},
        headers=world.headers("vsp", Role.org_admin),
    )
    assert response.status_code == 200, response.text


async def test_G08_valid_values_of_the_same_fields_are_accepted(
    client: httpx.AsyncClient, world: World
) -> None:
    """The refusals above are the patterns at work, not bodies broken some other way."""
    subject, consent = await new_consent(client, world, language="es-MX", evidence_sha256="ab" * 32)
    assert consent["language"] == "es-MX"
    response = await client.post(
        f"/v1/subjects/{subject}/alleged-abusers",
        json={"person_ref": "cd" * 32},
        headers=world.headers("vsp", Role.caseworker),
    )
    assert response.status_code == 201, response.text
    response = await client.put(
        f"/v1/organizations/{world.orgs['vsp']}/availability",
        json={**AVAILABILITY, "languages": ["en", "zh-Hant-TW"]},
        headers=world.headers("vsp", Role.org_admin),
    )
    assert response.status_code == 200, response.text
    response = await client.post(
        "/v1/records-requests",
        json=_records_request(world, subject_ref="case:2026/0042-a.b"),
        headers=world.headers("police", Role.investigator),
    )
    assert response.status_code == 201, response.text


# Without HTTP: the engines themselves -------------------------------------------------


def test_G08_request_models_use_the_rust_regex_engine() -> None:
    """pydantic's default engine is Rust's `regex` (it refuses look-around, which
    Python's `re` accepts), and no request model switches to `python-re`."""
    with pytest.raises(SchemaError, match="look-around"):
        TypeAdapter(Annotated[str, StringConstraints(pattern=r"(?=a)a")])
    models: list[type[StrictInput]] = []
    pending = [StrictInput]
    while pending:
        model = pending.pop()
        models.append(model)
        pending += model.__subclasses__()
    assert len(models) > 10, models  # the request models of every domain are imported
    engines = {m.__name__: m.model_config.get("regex_engine", "rust-regex") for m in models}
    assert set(engines.values()) == {"rust-regex"}, engines
    # The classic catastrophic pattern, on 50 KB, through the default engine.
    adapter = TypeAdapter(Annotated[str, StringConstraints(pattern=r"^(a+)+$")])
    started = time.perf_counter()
    with pytest.raises(ValidationError):
        adapter.validate_python(_fill("a", tail="!"))
    assert time.perf_counter() - started < BOUND_SECONDS


# (name, the call the service makes, inputs that must all be refused). The length
# checks in front of these calls are bypassed on purpose: the patterns alone must be
# fast on 50 KB.
PYTHON_RE: list[tuple[str, Callable[[str], object], dict[str, str]]] = [
    ("envelope NAME_PATTERN", envelope_parse.NAME_PATTERN.fullmatch, SHAPES["code"]),
    ("envelope UUID_PATTERN", envelope_parse.UUID_PATTERN.fullmatch, SHAPES["uuid"]),
    (
        "envelope KEY_ID_PATTERN",
        envelope_parse.KEY_ID_PATTERN.fullmatch,
        SHAPES["sha256"],
    ),
    (
        "strict_json printable key",
        strict_json._PRINTABLE_KEY.fullmatch,
        SHAPES["key"],
    ),
    ("policy POLICY_ID", policy_loader.POLICY_ID.fullmatch, POLICY_ID_SHAPES),
    (
        "engine error policy",
        policy_engine._ERROR_POLICY.search,
        {
            "open-quote-no-close": _fill("a", head="policy `"),
            "prefix-repeated": _fill("policy "),
            "backticks-only": _fill("`"),
        },
    ),
]


@pytest.mark.parametrize(("name", "call", "shapes"), PYTHON_RE, ids=[p[0] for p in PYTHON_RE])
def test_G08_python_re_patterns_are_fast_on_50kb(
    name: str, call: Callable[[str], object], shapes: dict[str, str], request: pytest.FixtureRequest
) -> None:
    worst = 0.0
    for shape, value in shapes.items():
        started = time.perf_counter()
        result = call(value)
        elapsed = time.perf_counter() - started
        assert result is None, f"{name} [{shape}]"
        assert elapsed < BOUND_SECONDS, f"{name} [{shape}]: {elapsed:.3f} s"
        worst = max(worst, elapsed)
    _record(request, "worst_seconds", round(worst, 6))


def test_G08_python_re_validators_refuse_50kb_values() -> None:
    """The guarded entry points the service calls: the envelope parser and the strict
    JSON reader name the place of each problem, never the 50 KB value."""
    base: dict[str, Any] = {
        "version": envelope_format.VERSION,
        "sender_org": _any_id(),
        "sender_key_id": "0" * 32,
        "recipient_org": _any_id(),
        "recipient_key_id": "0" * 32,
        "context": {
            "subject_id": _any_id(),
            "purpose": "services_referral",
            "consent_id": None,
            "request_id": None,
        },
        "fields": [{"name": "a"}],
        "signature": "",
    }
    for label, mutated, problem_path in _envelope_attacks(base):
        started = time.perf_counter()
        envelope, problems = envelope_parse.parse_envelope_obj(mutated)
        elapsed = time.perf_counter() - started
        assert envelope is None, label
        assert problem_path in [p.path for p in problems], label
        assert all(len(p.path) + len(p.message) < 200 for p in problems), label
        assert elapsed < BOUND_SECONDS, f"{label}: {elapsed:.3f} s"
    for shape, key in SHAPES["key"].items():
        assert strict_json.child_path("$", key) == "$.<unprintable key>", shape
        quoted = json.dumps(key)
        started = time.perf_counter()
        with pytest.raises(strict_json.StrictJSONError) as raised:
            strict_json.loads_strict(f'{{"a": {{{quoted}: 1, {quoted}: 2}}}}')
        assert time.perf_counter() - started < BOUND_SECONDS, shape
        assert [p.code for p in raised.value.problems] == ["duplicate_key"], shape
        assert key not in str(raised.value), shape
