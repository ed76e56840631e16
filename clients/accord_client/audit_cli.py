"""`accord-audit`: verify an audit log export offline."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from tqdm import tqdm

from accord_client.audit_verify import (
    VerificationError,
    load_state,
    read_lines,
    save_state,
    verify_lines,
)
from accord_client.checkpoint import Checkpoint, CheckpointError, verify_checkpoint

app = typer.Typer(help="Verify Accord audit log exports offline.", no_args_is_help=True)


@app.callback()
def _root() -> None:
    """Accord audit tools."""


def _key(value: str) -> bytes:
    path = Path(value)
    text = path.read_text(encoding="ascii").strip() if path.exists() else value
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise typer.BadParameter("the key must be base64 (or a file holding it)") from exc
    if len(raw) != 32:
        raise typer.BadParameter("an Ed25519 public key is 32 bytes")
    return raw


def _progress(path: Path, bar: tqdm[NoReturn]) -> Iterator[bytes]:
    for line in read_lines(path):
        bar.update(len(line) + 1)
        yield line


@app.command()
def verify(
    export: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL export")],
    key: Annotated[str, typer.Option(help="The service's checkpoint public key (base64 or file)")],
    origin: Annotated[str, typer.Option(help="The log's origin line")] = "accord.localhost/audit",
    checkpoint: Annotated[
        Path | None, typer.Option(help="A signed checkpoint (default: the export's last line)")
    ] = None,
    previous_checkpoint: Annotated[
        Path | None, typer.Option(help="An older signed checkpoint this log must extend")
    ] = None,
    state: Annotated[
        Path | None, typer.Option(help="State file of checkpoints verified before")
    ] = None,
) -> None:
    """Recompute every entry, the chain and the Merkle root; check the signature and
    that the log extends every older checkpoint. Exit 1 naming the first bad entry."""
    public_key = _key(key)
    older: list[Checkpoint] = load_state(state) if state else []
    bar: tqdm[NoReturn] = tqdm(
        total=export.stat().st_size, unit="B", unit_scale=True, desc="verifying"
    )
    try:
        if previous_checkpoint is not None:
            older.append(
                verify_checkpoint(
                    previous_checkpoint.read_text(encoding="utf-8"),
                    name=origin,
                    public_key=public_key,
                    origin=origin,
                )
            )
        result = verify_lines(
            _progress(export, bar),
            public_key=public_key,
            origin=origin,
            checkpoint_text=checkpoint.read_text(encoding="utf-8") if checkpoint else None,
            older=older,
        )
    except (VerificationError, CheckpointError) as exc:
        bar.close()
        typer.echo(f"FAILED: {exc}", err=True)
        raise typer.Exit(1) from exc
    bar.close()
    if state is not None:
        save_state(state, [*older, result.checkpoint])
    typer.echo(f"OK: {result.size} entries, root {result.root.hex()}")


def main() -> None:
    app()
