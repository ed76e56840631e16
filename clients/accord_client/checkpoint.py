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
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from accord_client.crypto import verify_ed25519
from accord_client.envelope_format import b64decode_strict

SIGNATURE_PREFIX = "\u2014 "  # em dash, space
ED25519_ALGORITHM = b"\x01"
# The C2SP text asks verifiers to accept at least 16 signatures, and post-quantum
# ones are nearly 5 kB each; 128 KiB and 100 lines leave room for that, no more.
MAX_NOTE_BYTES = 128 * 1024
MAX_SIGNATURES = 100
MAX_TREE_SIZE = 2**64 - 1


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
        if not 0 <= self.size <= MAX_TREE_SIZE or len(self.root_hash) != 32:
            raise CheckpointError("tree size must be a uint64 and the root 32 bytes")
        if any(not line or not line.isprintable() for line in self.extensions):
            raise CheckpointError("extension lines must be non-empty printable lines")
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
    _check_text(body)
    if not body.endswith("\n"):
        raise CheckpointError("note text must end with a newline")
    signature = sign(body.encode("utf-8"))
    blob = base64.b64encode(key_hash(name, public_key) + signature).decode("ascii")
    return f"{body}\n{SIGNATURE_PREFIX}{name} {blob}\n"


def _check_text(text: str) -> None:
    """C2SP signed-note: no ASCII control character other than newline."""
    if len(text.encode("utf-8", errors="replace")) > MAX_NOTE_BYTES:
        raise CheckpointError("note too large")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise CheckpointError("note contains a control character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate is not UTF-8 text
        raise CheckpointError("note is not valid UTF-8") from exc


def parse_note(text: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text (with its final newline) and signatures.
    The text ends at the last blank line; every line after it must be a signature."""
    _check_text(text)
    if not text.endswith("\n"):
        raise CheckpointError("note must end with a newline")
    separator = text.rfind("\n\n")
    if separator < 0:
        raise CheckpointError("note has no signature block")
    body, block = text[: separator + 1], text[separator + 2 :]
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError("note has too many signatures")
    signatures: list[NoteSignature] = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointError("signature line must start with an em dash and a space")
        parts = line[len(SIGNATURE_PREFIX) :].split(" ")
        if len(parts) != 2 or not _valid_name(parts[0]):
            raise CheckpointError("signature line must be '— <name> <signature>'")
        try:
            raw = b64decode_strict(parts[1])
        except ValueError as exc:
            raise CheckpointError("signature is not canonical base64") from exc
        if len(raw) < 5:
            raise CheckpointError("signature too short")
        signatures.append(NoteSignature(parts[0], raw[:4], raw[4:]))
    if not signatures or not body:
        raise CheckpointError("note has no text or no signature")
    return body, signatures


def verify_note(text: str, *, name: str, public_key: bytes) -> str:
    """The note's text, if the key (name, public key) signed it. Signatures of other
    keys are ignored; a signature that claims to be by this key (same name and key
    hash) and does not verify rejects the whole note, as the C2SP text advises."""
    body, signatures = parse_note(text)
    expected = key_hash(name, public_key)
    mine = [s for s in signatures if s.name == name and s.key_hash == expected]
    if not mine:
        raise CheckpointError(f"no signature by key {name!r}")
    message = body.encode("utf-8")
    if not all(verify_ed25519(public_key, message, s.signature) for s in mine):
        raise CheckpointError("checkpoint signature does not verify")
    return body


def parse_checkpoint(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise CheckpointError("checkpoint needs origin, size and root hash lines")
    origin, size_text, root_text, *extensions = lines[:-1]
    if not origin:
        raise CheckpointError("empty origin")
    # ASCII digits only: str.isdigit() would also accept other scripts' digits.
    if (
        not size_text
        or not all("0" <= ch <= "9" for ch in size_text)
        or (len(size_text) > 1 and size_text[0] == "0")
        or len(size_text) > 20
        or int(size_text) > MAX_TREE_SIZE
    ):
        raise CheckpointError("tree size must be a decimal uint64 without leading zeros")
    try:
        root = b64decode_strict(root_text)
    except ValueError as exc:
        raise CheckpointError("root hash is not canonical base64") from exc
    if len(root) != 32:
        raise CheckpointError("root hash must be 32 bytes")
    if any(not line for line in extensions):
        raise CheckpointError("empty extension line")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def verify_checkpoint(
    text: str, *, name: str, public_key: bytes, origin: str | None = None
) -> Checkpoint:
    """Parse a signed checkpoint and verify the signature of the named key."""
    checkpoint = parse_checkpoint(verify_note(text, name=name, public_key=public_key))
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError("checkpoint origin does not match")
    return checkpoint


# --- the published verifier key: "<name>+<hex key hash>+<base64(0x01 || key)>" ----


def verifier_key(name: str, public_key: bytes) -> str:
    """The C2SP / sumdb-note text form of the checkpoint key, to publish out of band."""
    if not _valid_name(name) or len(public_key) != 32:
        raise CheckpointError("invalid key name or Ed25519 public key")
    encoded = base64.b64encode(ED25519_ALGORITHM + public_key).decode("ascii")
    return f"{name}+{key_hash(name, public_key).hex()}+{encoded}"


def parse_verifier_key(text: str) -> tuple[str, bytes]:
    """(name, Ed25519 public key) from a verifier key string, checked strictly: the
    key hash must be the one the name and key give, the type must be Ed25519."""
    parts = text.split("+", 2)  # the base64 part may itself contain '+'
    if len(parts) != 3 or not _valid_name(parts[0]):
        raise CheckpointError("verifier key must be '<name>+<key hash>+<key>'")
    name, hash_hex, encoded = parts
    try:
        raw = b64decode_strict(encoded)
    except ValueError as exc:
        raise CheckpointError("verifier key is not canonical base64") from exc
    if len(raw) != 33 or raw[:1] != ED25519_ALGORITHM:
        raise CheckpointError("verifier key is not an Ed25519 key")
    public_key = raw[1:]
    if hash_hex != key_hash(name, public_key).hex():
        raise CheckpointError("verifier key hash does not match its name and key")
    return name, public_key


__all__: Sequence[str] = [
    "Checkpoint",
    "CheckpointError",
    "NoteSignature",
    "key_hash",
    "parse_checkpoint",
    "parse_note",
    "parse_verifier_key",
    "sign_note",
    "verifier_key",
    "verify_checkpoint",
    "verify_note",
]
