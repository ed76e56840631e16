"""Signed checkpoints in the C2SP `tlog-checkpoint` format with `signed-note`
Ed25519 signatures.

A checkpoint body is three lines and optional extension lines, each ending in a
newline: the origin, the tree size in decimal, the base64 root hash. A signed
note is the body, one empty line, and one or more signature lines
`— <key name> <base64(key hash || signature)>`, where the key hash is the first
four bytes of SHA-256(key name || 0x0A || 0x01 || Ed25519 public key) and the
signature is Ed25519 over the body bytes. Parsing is strict: anything that is
not exactly this shape is refused, never repaired.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from accord_client.crypto import verify_ed25519

SIGNATURE_PREFIX = "\u2014 "  # em dash, space
ED25519_ALGORITHM = b"\x01"
MAX_NOTE_BYTES = 64 * 1024


class CheckpointError(ValueError):
    """A checkpoint or signed note that does not parse or does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = field(default=())

    def body(self) -> str:
        if not self.origin or "\n" in self.origin or not self.origin.isprintable():
            raise CheckpointError("origin must be one printable line")
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii")]
        lines += list(self.extensions)
        return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_hash: bytes
    signature: bytes


def key_hash(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519_ALGORITHM + public_key).digest()[
        :4
    ]


def _valid_name(name: str) -> bool:
    return bool(name) and name.isprintable() and " " not in name and "+" not in name


def sign_note(body: str, *, name: str, public_key: bytes, sign: Callable[[bytes], bytes]) -> str:
    """The signed note: body, empty line, one signature line."""
    if not _valid_name(name):
        raise CheckpointError("key name must be printable, without spaces or '+'")
    signature = sign(body.encode("utf-8"))
    blob = base64.b64encode(key_hash(name, public_key) + signature).decode("ascii")
    return f"{body}\n{SIGNATURE_PREFIX}{name} {blob}\n"


def parse_note(text: str) -> tuple[str, list[NoteSignature]]:
    if len(text.encode("utf-8")) > MAX_NOTE_BYTES:
        raise CheckpointError("note too large")
    if not text.endswith("\n"):
        raise CheckpointError("note must end with a newline")
    separator = text.rfind("\n\n")
    if separator < 0:
        raise CheckpointError("note has no signature block")
    body, block = text[: separator + 1], text[separator + 2 :]
    signatures: list[NoteSignature] = []
    for line in block[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointError("signature line must start with an em dash and a space")
        parts = line[len(SIGNATURE_PREFIX) :].split(" ")
        if len(parts) != 2 or not _valid_name(parts[0]):
            raise CheckpointError("signature line must be '— <name> <signature>'")
        try:
            raw = base64.b64decode(parts[1], validate=True)
        except binascii.Error as exc:
            raise CheckpointError("signature is not base64") from exc
        if len(raw) < 5:
            raise CheckpointError("signature too short")
        signatures.append(NoteSignature(parts[0], raw[:4], raw[4:]))
    if not signatures:
        raise CheckpointError("note has no signature")
    return body, signatures


def parse_checkpoint(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise CheckpointError("checkpoint needs origin, size and root hash lines")
    origin, size_text, root_text, *extensions = lines[:-1]
    if not origin:
        raise CheckpointError("empty origin")
    if not size_text.isdigit() or (len(size_text) > 1 and size_text[0] == "0"):
        raise CheckpointError("tree size must be a decimal number without leading zeros")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise CheckpointError("root hash is not base64") from exc
    if len(root) != 32 or base64.b64encode(root).decode("ascii") != root_text:
        raise CheckpointError("root hash must be 32 bytes in canonical base64")
    if any(not line for line in extensions):
        raise CheckpointError("empty extension line")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def verify_checkpoint(
    text: str, *, name: str, public_key: bytes, origin: str | None = None
) -> Checkpoint:
    """Parse a signed checkpoint and verify the signature of the named key."""
    body, signatures = parse_note(text)
    expected = key_hash(name, public_key)
    mine = [s for s in signatures if s.name == name and s.key_hash == expected]
    if not mine:
        raise CheckpointError(f"no signature by key {name!r}")
    if not any(verify_ed25519(public_key, body.encode("utf-8"), s.signature) for s in mine):
        raise CheckpointError("checkpoint signature does not verify")
    checkpoint = parse_checkpoint(body)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError("checkpoint origin does not match")
    return checkpoint


__all__: Sequence[str] = [
    "Checkpoint",
    "CheckpointError",
    "NoteSignature",
    "key_hash",
    "parse_checkpoint",
    "parse_note",
    "sign_note",
    "verify_checkpoint",
]
