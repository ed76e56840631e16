"""The client's surface: a method for every `/v1` operation of the app, on both
clients, sending the same request; the sync twin generated from the async source
and the response shapes generated from the OpenAPI document, both up to date;
clients/README.md's table naming every method with its operation."""

from __future__ import annotations

import importlib.util
import inspect
import io
import json
import re
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from accord_client.api import AccordClient, AsyncAccordClient
from accord_client.api_models import ConsentDraft, RetryPolicy
from accord_client.keys import generate_organization_keys

from tests.client.operations import OPERATIONS

CLIENTS = Path(__file__).resolve().parents[2] / "clients"
AN_ID = "0b0e2d4c-5f7a-4e1b-9c3d-2a6f8e9b1c0d"


def tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"accord_tools_{name}", CLIENTS / "tools" / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def v1_operations(openapi: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in openapi["paths"].items()
        if path.startswith("/v1/")
        for method in operations
    }


async def test_every_v1_operation_of_the_app_has_a_client_method(app: Any) -> None:
    served = v1_operations(app.openapi())
    assert served - OPERATIONS.keys() == set(), "operations without a client method"
    assert OPERATIONS.keys() - served == set(), "client methods for operations the app lacks"
    for name in OPERATIONS.values():
        assert callable(getattr(AccordClient, name, None)), name
        assert callable(getattr(AsyncAccordClient, name, None)), name


# -- both clients send each operation's request -------------------------------------------

_SAMPLES: dict[str, Any] = {
    "name": "x", "sector": "shelter", "cedar": "forbid", "availability": {},
    "agreement": {}, "purpose": "services_referral", "legal_basis": "consent",
    "categories": ["contact"], "person_ref": "ab" * 32, "reason": "other",
    "envelope": {}, "box": "received", "outcome": "services_provided",
    "subject_ref": "REF-1", "justification": "x", "decision": "refuse",
    "document_sha256": "ab" * 32, "until": datetime(2030, 1, 1, tzinfo=UTC),
    "done_at": datetime(2030, 1, 1, tzinfo=UTC), "how": "phone", "finding": "justified",
    "survivor_notified": True, "seq": 0, "tree_size": 1, "from_size": 1, "to_size": 2,
    "url": "https://cms.example/hook", "event_types": ["referral.accepted"],
    "subject": "alice", "jti": "a-token-id", "keys": generate_organization_keys(AN_ID),
    "confidential": True, "version": 1, "signature": "AA==",
    "period": "2026-Q3",
}  # fmt: skip
# Optional arguments that a method needs at least one of.
_EXTRA: dict[str, dict[str, Any]] = {"update_webhook": {"paused": True}}


def sample(parameter: str) -> Any:
    if parameter.endswith("_id"):
        return AN_ID
    if parameter == "draft":
        return ConsentDraft(
            recipients=(AN_ID,), purposes=("services_referral",), categories=("contact",),
            expires_at=datetime(2030, 1, 1, tzinfo=UTC), method="written", language="en",
        )  # fmt: skip
    if parameter == "out":
        return io.BytesIO()
    return _SAMPLES[parameter]


def required_arguments(method: Any) -> tuple[list[Any], dict[str, Any]]:
    args: list[Any] = []
    kwargs: dict[str, Any] = dict(_EXTRA.get(method.__name__, {}))
    for parameter in list(inspect.signature(method).parameters.values())[1:]:
        if parameter.default is not inspect.Parameter.empty:
            continue
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            kwargs[parameter.name] = sample(parameter.name)
        else:
            args.append(sample(parameter.name))
    return args, kwargs


class SentError(Exception):
    """Raised by the recording transport once the request is seen."""


def template_of(path: str) -> str:
    return re.sub(re.escape(AN_ID), "{}", path)


def normalized(template: str) -> str:
    return re.sub(r"\{[a-z_]+\}", "{}", template)


@pytest.mark.parametrize(("operation", "name"), sorted(OPERATIONS.items()))
async def test_both_clients_send_the_operation_of_their_method(
    operation: tuple[str, str], name: str
) -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        raise SentError

    options: dict[str, Any] = {"base_url": "http://accord.test", "token": "t"}
    options["retry"] = RetryPolicy(attempts=1)
    sync = AccordClient(**options, transport=httpx.MockTransport(record))
    args, kwargs = required_arguments(getattr(AccordClient, name))
    with pytest.raises(SentError):
        getattr(sync, name)(*args, **kwargs)
    async with AsyncAccordClient(**options, transport=httpx.MockTransport(record)) as aclient:
        args, kwargs = required_arguments(getattr(AsyncAccordClient, name))
        with pytest.raises(SentError):
            await getattr(aclient, name)(*args, **kwargs)
    first, second = seen
    method, path = operation
    assert (first.method, template_of(first.url.path)) == (method, normalized(path))
    assert (first.method, first.url, first.content) == (second.method, second.url, second.content)


# -- one source: the twins cannot drift --------------------------------------------------


def public_methods(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, callable)
        if not name.startswith("_")
    }


def test_the_sync_client_is_the_async_one_without_await() -> None:
    """Same public methods with the same signatures, once `Async` and awaiting are
    taken away; every async method is awaited or async-iterated, no sync one is."""
    unasync = tool("unasync")
    sync, async_ = public_methods(AccordClient), public_methods(AsyncAccordClient)
    assert sync.keys() == async_.keys()
    assert len(sync) > 70
    for name, method in async_.items():
        expected = str(inspect.signature(method))
        for pattern, replacement in unasync.REPLACEMENTS:
            expected = re.sub(pattern, replacement, expected)
        assert str(inspect.signature(sync[name])) == expected, name
        if name.startswith("iter_"):
            assert inspect.isasyncgenfunction(method), name
            assert not inspect.isasyncgenfunction(sync[name]), name
        else:
            assert inspect.iscoroutinefunction(method), name
            assert not inspect.iscoroutinefunction(sync[name]), name


def test_the_generated_sync_modules_are_up_to_date() -> None:
    for path, text in tool("unasync").expected().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is stale: run .venv/bin/python clients/tools/unasync.py"
        )


async def test_the_response_shapes_are_up_to_date(app: Any) -> None:
    unasync, schemas = tool("unasync"), tool("schemas")
    target = CLIENTS / "accord_client" / "schemas.py"
    expected = unasync.ruff_format(schemas.generate(app.openapi()), str(target))
    assert target.read_text(encoding="utf-8") == expected, (
        "accord_client/schemas.py is stale: see clients/tools/schemas.py"
    )


def test_the_readme_table_names_every_method_with_its_operation() -> None:
    text = (CLIENTS / "README.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([A-Z]+) ([^`]+)` \| `(\w+)", text, re.M))
    assert {(m, p, n) for (m, p), n in OPERATIONS.items()} <= rows
    assert json.dumps(sorted(rows - {(m, p, n) for (m, p), n in OPERATIONS.items()})) == "[]"


def test_the_recording_transport_check_can_fail() -> None:
    """The operation check above compares real request lines: a method pointed at
    another path would be caught."""
    assert template_of(f"/v1/referrals/{AN_ID}/accept") == "/v1/referrals/{}/accept"
    assert normalized("/v1/referrals/{referral_id}/accept") == "/v1/referrals/{}/accept"
    assert normalized("/v1/referrals/{referral_id}/close") != "/v1/referrals/{}/accept"
    assert uuid.UUID(AN_ID)
