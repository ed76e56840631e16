"""`accord-consent`: record, amend, revoke, list and export consent grants.

For caseworkers recording a survivor's consent from a terminal. The evidence
(a signed form, a recording) never leaves the machine: only its SHA-256 is sent.
Output is JSON on stdout; problems go to stderr with exit code 1, each broken rule
on its own line (paths and rules only: the service never echoes values back).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer

from accord_client.api import AccordClient
from accord_client.api_models import AccordAPIError, ConsentDraft

app = typer.Typer(
    help="Record and manage survivors' consent grants in Accord.", no_args_is_help=True
)


class Method(StrEnum):
    written = "written"
    verbal = "verbal"
    electronic = "electronic"


class GivenBy(StrEnum):
    survivor = "survivor"
    parent_or_guardian = "parent_or_guardian"
    legal_representative = "legal_representative"


class WitnessRole(StrEnum):
    caseworker = "caseworker"
    supervisor = "supervisor"
    advocate = "advocate"
    interpreter = "interpreter"


class ExportFormat(StrEnum):
    receipt = "receipt"
    fhir = "fhir"


@dataclass(frozen=True, slots=True)
class _Connection:
    url: str
    token: str
    transport: httpx.BaseTransport | None  # tests inject one through CliRunner's obj

    def client(self) -> AccordClient:
        return AccordClient(base_url=self.url, token=self.token, transport=self.transport)


@app.callback()
def _root(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option(envvar="ACCORD_URL", help="Service base URL, e.g. https://accord.example")
    ] = "",
    token: Annotated[
        str,
        typer.Option(
            envvar="ACCORD_TOKEN",
            help="Staff bearer token (prefer the env var)",
            show_default=False,
        ),
    ] = "",
) -> None:
    """Accord consent tools."""
    transport = ctx.obj if isinstance(ctx.obj, httpx.BaseTransport) else None
    ctx.obj = _Connection(url=url, token=token, transport=transport)


def _fail(message: str, lines: list[str] | None = None) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    for line in lines or []:
        typer.echo(f"  {line}", err=True)
    raise typer.Exit(code=1)


def _connection(ctx: typer.Context) -> _Connection:
    conn = ctx.obj
    if not isinstance(conn, _Connection):  # pragma: no cover - set by the callback
        _fail("internal: no connection settings")
    if not conn.url:
        _fail("no service URL: pass --url or set ACCORD_URL")
    if not conn.token:
        _fail("no token: pass --token or set ACCORD_TOKEN")
    return conn


def _call(ctx: typer.Context, call: Callable[[AccordClient], Any]) -> Any:
    """`call(client)`'s result, or the problem printed to stderr and exit code 1."""
    conn = _connection(ctx)
    try:
        with conn.client() as client:
            return call(client)
    except AccordAPIError as exc:
        problem = exc.problem
        head = f"{problem.status} {problem.title}"
        if problem.detail:
            head += f": {problem.detail}"
        _fail(head, [f"{item.path}: {item.message}" for item in problem.errors])
    except httpx.TransportError as exc:
        _fail(f"cannot reach the service ({type(exc).__name__})")


def _print(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _run(ctx: typer.Context, call: Callable[[AccordClient], Any]) -> None:
    _print(_call(ctx, call))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _aware(value: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("not an ISO 8601 date-time", param_hint=option) from None
    if moment.tzinfo is None:
        raise typer.BadParameter("needs a UTC offset, e.g. 2027-01-31T00:00:00Z", param_hint=option)
    return moment


Recipients = Annotated[
    list[str], typer.Option("--recipient", help="Recipient organization id (repeatable)")
]
Purposes = Annotated[list[str], typer.Option("--purpose", help="Purpose (repeatable)")]
Categories = Annotated[list[str], typer.Option("--category", help="Data category (repeatable)")]
Fields = Annotated[
    list[str] | None, typer.Option("--field", help="Limit to these fields (repeatable)")
]
ExpiresAt = Annotated[str, typer.Option("--expires-at", help="ISO 8601 with offset")]
ValidFrom = Annotated[str | None, typer.Option("--valid-from", help="ISO 8601 with offset")]
MethodOpt = Annotated[Method, typer.Option("--method", help="How consent was given")]
Language = Annotated[str, typer.Option("--language", help="BCP 47 tag of the consent language")]
EvidenceFile = Annotated[
    Path | None,
    typer.Option(
        "--evidence-file",
        exists=True,
        dir_okay=False,
        readable=True,
        help="The signed form or recording; only its SHA-256 is sent, never the file",
    ),
]
GivenByOpt = Annotated[GivenBy | None, typer.Option("--given-by", help="Who gave consent")]
GiverRef = Annotated[
    str | None,
    typer.Option("--giver-ref", help="Opaque hex reference of the guardian/representative"),
]
WitnessOpt = Annotated[
    WitnessRole | None, typer.Option("--witness-role", help="Witness of verbal consent")
]
IdempotencyKey = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key", help="Idempotency-Key header to send (default: a new uuid4 per run)"
    ),
]


def _draft(
    *,
    recipient: list[str],
    purpose: list[str],
    category: list[str],
    field: list[str] | None,
    expires_at: str,
    valid_from: str | None,
    method: Method,
    language: str,
    evidence_file: Path | None,
    given_by: GivenBy | None,
    giver_ref: str | None,
    witness_role: WitnessRole | None,
) -> ConsentDraft:
    return ConsentDraft(
        recipients=tuple(recipient),
        purposes=tuple(purpose),
        categories=tuple(category),
        fields=tuple(field) if field else None,
        expires_at=_aware(expires_at, "--expires-at"),
        valid_from=_aware(valid_from, "--valid-from") if valid_from else None,
        method=method.value,
        language=language,
        evidence_sha256=_sha256_file(evidence_file) if evidence_file else None,
        given_by=given_by.value if given_by else None,
        giver_ref=giver_ref,
        witness_role=witness_role.value if witness_role else None,
    )


@app.command()
def record(
    ctx: typer.Context,
    subject_id: Annotated[str, typer.Argument(help="The subject's id")],
    recipient: Recipients,
    purpose: Purposes,
    category: Categories,
    expires_at: ExpiresAt,
    method: MethodOpt,
    language: Language,
    field: Fields = None,
    valid_from: ValidFrom = None,
    evidence_file: EvidenceFile = None,
    given_by: GivenByOpt = None,
    giver_ref: GiverRef = None,
    witness_role: WitnessOpt = None,
    idempotency_key: IdempotencyKey = None,
) -> None:
    """Record a new consent grant for a subject."""
    draft = _draft(
        recipient=recipient, purpose=purpose, category=category, field=field,
        expires_at=expires_at, valid_from=valid_from, method=method, language=language,
        evidence_file=evidence_file, given_by=given_by, giver_ref=giver_ref,
        witness_role=witness_role,
    )  # fmt: skip
    _run(ctx, lambda c: c.create_consent(subject_id, draft, idempotency_key=idempotency_key))


@app.command()
def amend(
    ctx: typer.Context,
    consent_id: Annotated[str, typer.Argument(help="The current version's id")],
    recipient: Recipients,
    purpose: Purposes,
    category: Categories,
    expires_at: ExpiresAt,
    method: MethodOpt,
    language: Language,
    field: Fields = None,
    valid_from: ValidFrom = None,
    evidence_file: EvidenceFile = None,
    given_by: GivenByOpt = None,
    giver_ref: GiverRef = None,
    witness_role: WitnessOpt = None,
    idempotency_key: IdempotencyKey = None,
) -> None:
    """Record a new version that supersedes CONSENT_ID (the old one is kept)."""
    draft = _draft(
        recipient=recipient, purpose=purpose, category=category, field=field,
        expires_at=expires_at, valid_from=valid_from, method=method, language=language,
        evidence_file=evidence_file, given_by=given_by, giver_ref=giver_ref,
        witness_role=witness_role,
    )  # fmt: skip
    _run(ctx, lambda c: c.amend_consent(consent_id, draft, idempotency_key=idempotency_key))


@app.command()
def revoke(
    ctx: typer.Context,
    consent_id: Annotated[str, typer.Argument(help="The consent's id")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the record)")],
) -> None:
    """Withdraw a consent, effective immediately and irreversibly."""
    _run(ctx, lambda c: c.revoke_consent(consent_id, reason=reason))


@app.command("list")
def list_(
    ctx: typer.Context, subject_id: Annotated[str, typer.Argument(help="The subject's id")]
) -> None:
    """Every version of every grant for a subject, newest first."""
    _run(ctx, lambda c: c.list_consents(subject_id))


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


@app.command()
def export(
    ctx: typer.Context,
    consent_id: Annotated[str, typer.Argument(help="The consent's id")],
    format: Annotated[ExportFormat, typer.Option("--format", help="receipt or fhir")],
    output: Annotated[
        Path | None, typer.Option("--output", dir_okay=False, help="Write here (mode 0600)")
    ] = None,
) -> None:
    """The signed consent receipt, or the HL7 FHIR R4 Consent resource."""

    def fetch(client: AccordClient) -> Any:
        if format is ExportFormat.receipt:
            return client.get_consent_receipt(consent_id)
        return client.get_consent_fhir(consent_id)

    document = _call(ctx, fetch)
    if output is None:
        _print(document)
        return
    _write_private(output, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    _print({"written": str(output)})


def main() -> None:
    app()
