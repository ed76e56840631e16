"""C2SP tlog-checkpoint + signed-note: our writer and verifier, and an independent
parser written here from the C2SP text (not from our code)."""

from __future__ import annotations

import base64
import hashlib

import nacl.signing
import pytest
from accord_client.checkpoint import (
    Checkpoint,
    CheckpointError,
    key_hash,
    parse_checkpoint,
    sign_note,
    verify_checkpoint,
)

NAME = "accord.example/audit"
ROOT = hashlib.sha256(b"root").digest()


@pytest.fixture(scope="module")
def key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(hashlib.sha256(b"test checkpoint key").digest())


def _signed(key: nacl.signing.SigningKey, checkpoint: Checkpoint) -> str:
    return sign_note(
        checkpoint.body(),
        name=NAME,
        public_key=bytes(key.verify_key),
        sign=lambda m: bytes(key.sign(m).signature),
    )


def _independent_parse(text: str, public_key: bytes) -> tuple[str, int, bytes]:
    """From the C2SP specs: the note is the text, a blank line, then lines
    "— <name> <base64 signature>"; the signature blob is a 4-byte key ID
    (SHA-256 of name, newline, signature-type byte 0x01, public key, truncated)
    followed by the Ed25519 signature of the text. The checkpoint text is the
    origin line, the decimal tree size line and the base64 root hash line."""
    text_part, sig_part = text.split("\n\n")
    text_bytes = (text_part + "\n").encode()
    (sig_line,) = sig_part.rstrip("\n").split("\n")
    dash, name, blob = sig_line.split(" ")
    assert dash == "\u2014"
    raw = base64.b64decode(blob)
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + public_key).digest()[:4]
    assert raw[:4] == key_id
    nacl.signing.VerifyKey(public_key).verify(text_bytes, raw[4:])
    origin, size, root = text_part.split("\n")[:3]
    return origin, int(size), base64.b64decode(root)


def test_signed_checkpoint_round_trips_and_an_independent_parser_agrees(
    key: nacl.signing.SigningKey,
) -> None:
    checkpoint = Checkpoint(NAME, 42, ROOT)
    text = _signed(key, checkpoint)
    assert text.startswith(f"{NAME}\n42\n{base64.b64encode(ROOT).decode()}\n\n\u2014 {NAME} ")
    assert verify_checkpoint(text, name=NAME, public_key=bytes(key.verify_key)) == checkpoint
    assert _independent_parse(text, bytes(key.verify_key)) == (NAME, 42, ROOT)
    assert len(key_hash(NAME, bytes(key.verify_key))) == 4


def test_F_any_changed_byte_fails(key: nacl.signing.SigningKey) -> None:
    text = _signed(key, Checkpoint(NAME, 7, ROOT))
    public = bytes(key.verify_key)
    raw = text.encode()
    for i in range(len(raw)):
        changed = bytearray(raw)
        changed[i] ^= 0x01
        try:
            mutated = bytes(changed).decode()
        except UnicodeDecodeError:
            continue
        with pytest.raises(CheckpointError):
            verify_checkpoint(mutated, name=NAME, public_key=public)


def test_wrong_key_wrong_origin_and_malformed_notes(key: nacl.signing.SigningKey) -> None:
    text = _signed(key, Checkpoint(NAME, 7, ROOT))
    other = nacl.signing.SigningKey(hashlib.sha256(b"other").digest())
    with pytest.raises(CheckpointError, match="no signature"):
        verify_checkpoint(text, name=NAME, public_key=bytes(other.verify_key))
    with pytest.raises(CheckpointError, match="origin"):
        verify_checkpoint(text, name=NAME, public_key=bytes(key.verify_key), origin="elsewhere")
    for bad in ("", "x\n", text.rstrip("\n"), text.replace("\u2014", "-")):
        with pytest.raises(CheckpointError):
            verify_checkpoint(bad, name=NAME, public_key=bytes(key.verify_key))


@pytest.mark.parametrize(
    "body",
    [
        "o\n07\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n-1\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n1\n" + base64.b64encode(ROOT[:31]).decode() + "\n",
        "o\n1\n" + base64.b64encode(ROOT).decode(),
        "\n1\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n1\n" + base64.b64encode(ROOT).decode() + "\n\n",
    ],
)
def test_checkpoint_bodies_are_parsed_strictly(body: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(body)
