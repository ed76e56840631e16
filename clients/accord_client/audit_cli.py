"""`accord-audit`: verify an audit log export offline, and compare checkpoints."""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from tqdm import tqdm

from accord_client.audit_verify import (
    EquivocationError,
    SignedCheckpoint,
    VerificationError,
    load_state,
    save_state,
)
from accord_client.audit_verify_parallel import default_jobs, verify_file
from accord_client.checkpoint import CheckpointError, parse_verifier_key, verify_checkpoint
from accord_client.merkle import verify_consistency

DEFAULT_ORIGIN = "accord.localhost/audit"

app = typer.Typer(help="Verify Accord audit log exports offline.", no_args_is_help=True)

KeyOption = Annotated[
    str,
    typer.Option(
        help="The service's checkpoint key: its verifier key string "
        "'<name>+<key hash>+<base64>', or the base64 Ed25519 public key, or a file "
        "holding either. Get it out of band, not from the server being audited."
    ),
]
OriginOption = Annotated[
    str | None,
    typer.Option(
        help=f"The log's origin line (default: the verifier key's name, or {DEFAULT_ORIGIN})"
    ),
]


@app.callback()
def _root() -> None:
    """Accord audit tools."""


def _key(value: str, origin: str | None) -> tuple[bytes, str]:
    """(public key, origin) from --key and --origin."""
    path = Path(value)
    text = path.read_text(encoding="utf-8").strip() if path.is_file() else value.strip()
    # A 32-byte key in base64 always ends in "="; a verifier key (33 bytes) never does.
    if not text.endswith("="):
        return _vkey(text, origin)
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise typer.BadParameter("the key must be a verifier key or base64") from exc
    if len(raw) != 32:
        raise typer.BadParameter("an Ed25519 public key is 32 bytes")
    return raw, origin or DEFAULT_ORIGIN


def _vkey(text: str, origin: str | None) -> tuple[bytes, str]:
    try:
        name, public_key = parse_verifier_key(text)
    except CheckpointError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if origin is not None and origin != name:
        raise typer.BadParameter("the verifier key's name is not the given origin")
    return public_key, name


def _b64(raw: bytes) -> str:
    """Standard base64, as the API gives hashes (GET /v1/audit/checkpoint's root_hash)."""
    return base64.b64encode(raw).decode("ascii")


def _fail(exc: Exception) -> NoReturn:
    typer.echo(f"FAILED: {exc}", err=True)
    if isinstance(exc, EquivocationError):
        typer.echo("EQUIVOCATION: keep both signed checkpoints below as evidence.", err=True)
        for note in exc.evidence:
            typer.echo("----", err=True)
            typer.echo(note if note is not None else "(signed note not kept)", err=True)
    raise typer.Exit(1) from exc


@app.command()
def verify(
    export: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL export")],
    key: KeyOption,
    origin: OriginOption = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="A signed checkpoint (default: the export's last line)")
    ] = None,
    previous_checkpoint: Annotated[
        Path | None, typer.Option(help="An older signed checkpoint this log must extend")
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(help="State file of checkpoints verified before (kept up to date)"),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(min=1, help="Processes to verify with (default: one per core)"),
    ] = None,
) -> None:
    """Recompute every entry, the chain and the Merkle root; check the signature and
    that the log extends every older checkpoint. A filtered export: check every
    entry's inclusion proof against the checkpoint, and the chain where neighbours
    are present. Exit 1 naming the first bad entry."""
    public_key, log_origin = _key(key, origin)
    bar: tqdm[NoReturn] | None = None
    try:
        older = load_state(state, public_key=public_key, origin=log_origin) if state else []
        if previous_checkpoint is not None:
            note = previous_checkpoint.read_text(encoding="utf-8")
            old = verify_checkpoint(note, name=log_origin, public_key=public_key, origin=log_origin)
            older.append(SignedCheckpoint(old, note))
        bar = tqdm(total=export.stat().st_size, unit="B", unit_scale=True, desc="verifying")
        result = verify_file(
            export,
            public_key=public_key,
            origin=log_origin,
            checkpoint_text=checkpoint.read_text(encoding="utf-8") if checkpoint else None,
            older=older,
            require_end=True,
            jobs=jobs or default_jobs(),
            progress=bar.update,
        )
    except (VerificationError, CheckpointError) as exc:
        if bar is not None:
            bar.close()
        _fail(exc)
    bar.close()
    if state is not None:
        save_state(state, [*older, SignedCheckpoint(result.checkpoint, result.note)])
    if not result.filtered:
        typer.echo(f"OK: {result.size} entries, root {_b64(result.root)}")
        return
    for size in result.unchecked_older:
        typer.echo(
            f"note: the checkpoint of size {size} verified before is not compared: a "
            "filtered export cannot show it is a prefix (use 'accord-audit compare' "
            "with a consistency proof)",
            err=True,
        )
    typer.echo(
        f"OK: filtered export: {result.entries} entries, each proven included in the log "
        f"of {result.size} entries, root {_b64(result.root)}"
    )


@app.command()
def compare(
    first: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A signed checkpoint")],
    second: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Another one")],
    key: KeyOption,
    origin: OriginOption = None,
    proof: Annotated[
        Path | None,
        typer.Option(
            help="The consistency proof between their sizes: the JSON body of "
            "GET /v1/audit/proof/consistency?from_size=<smaller>&to_size=<larger>"
        ),
    ] = None,
) -> None:
    """Check that two signed checkpoints (yours and another member's, or an old and a
    new one) describe one history: equal roots at equal sizes, or a valid consistency
    proof from the smaller to the larger. Exit 1 on equivocation, with the evidence."""
    public_key, log_origin = _key(key, origin)
    notes = [first.read_text(encoding="utf-8"), second.read_text(encoding="utf-8")]
    try:
        a, b = (
            verify_checkpoint(n, name=log_origin, public_key=public_key, origin=log_origin)
            for n in notes
        )
        if a.size > b.size:
            a, b = b, a
            notes.reverse()
        nodes = _proof_nodes(proof, a.size, b.size) if a.size != b.size else []
        if not verify_consistency(a.size, b.size, a.root_hash, b.root_hash, nodes):
            raise EquivocationError(
                f"the checkpoints of sizes {a.size} and {b.size} do not describe one history",
                (notes[0], notes[1]),
            )
    except (VerificationError, CheckpointError) as exc:
        _fail(exc)
    typer.echo(f"OK: the checkpoint of size {b.size} extends the one of size {a.size}")


def _proof_nodes(path: Path | None, from_size: int, to_size: int) -> list[bytes]:
    if path is None:
        raise VerificationError(
            f"checkpoints of different sizes need a consistency proof ({from_size} -> {to_size})"
        )
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        if body.get("from_size") != from_size or body.get("tree_size") != to_size:
            raise VerificationError("the proof is for other sizes")
        return [base64.b64decode(p, validate=True) for p in body["proof"]]
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise VerificationError(f"the proof file is malformed: {exc}") from exc


@app.command()
def agreements(
    history: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="GET /v1/collaborations/{id}/agreements body, plus a collaboration_id key",
        ),
    ],
    keys: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="{org_id: GET /v1/organizations/{org_id}/keys body} for every signer",
        ),
    ],
) -> None:
    """Check every agreement version's hash chain and every stored countersignature
    against the directory's key history (docs/agreements.md). Exit 1 on any problem."""
    from accord_client.agreements import verify_export

    try:
        checked, problems = verify_export(
            json.loads(history.read_text(encoding="utf-8")),
            json.loads(keys.read_text(encoding="utf-8")),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        _fail(VerificationError(f"the files are malformed: {exc}"))
    for problem in problems:
        typer.echo(f"FAIL: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"OK: {checked} signatures verify against the directory's key history")


def main() -> None:
    app()
