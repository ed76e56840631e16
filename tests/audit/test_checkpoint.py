"""C2SP tlog-checkpoint + signed-note: our writer and verifier, and an independent
parser written here from the C2SP text (not from our code)."""

from __future__ import annotations

import base64
import hashlib

import nacl.signing
import pytest
from accord_client.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    CheckpointError,
    key_hash,
    parse_checkpoint,
    parse_note,
    parse_verifier_key,
    sign_note,
    verifier_key,
    verify_checkpoint,
    verify_note,
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
        # Digits of other scripts pass str.isdigit() and int(): "\u0663" is Arabic-Indic 3.
        "o\n\u0663\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n\u00b2\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n+1\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n 1\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n" + str(2**64) + "\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n1\n" + base64.urlsafe_b64encode(b"\xfb" * 32).decode() + "\n",
        "o\n1\n" + base64.b64encode(ROOT).decode().rstrip("=") + "\n",
        "o\n1\n" + base64.b64encode(ROOT).decode()[:-2] + "R=\n",  # non-zero padding bits
        "o\n1\n " + base64.b64encode(ROOT).decode() + "\n",
        "o\n1\n",
    ],
)
def test_checkpoint_bodies_are_parsed_strictly(body: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(body)


def test_the_largest_uint64_size_parses() -> None:
    body = f"o\n{2**64 - 1}\n{base64.b64encode(ROOT).decode()}\next\n"
    assert parse_checkpoint(body) == Checkpoint("o", 2**64 - 1, ROOT, ("ext",))


# The example of golang.org/x/mod/sumdb/note (note.go's package documentation), the
# reference implementation of the C2SP signed-note format: a key pair in its text
# forms and the note it signs. Ed25519 is deterministic, so we must reproduce the
# published note byte for byte.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY_B64 = (
    "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  # from PRIVATE+KEY+PeterNeumann+c74f20a3+
)
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_the_go_sumdb_note_example_signs_and_verifies_byte_for_byte() -> None:
    name, public = parse_verifier_key(GO_VKEY)
    assert name == "PeterNeumann"
    assert key_hash(name, public).hex() == "c74f20a3"
    assert verifier_key(name, public) == GO_VKEY
    seed = base64.b64decode(GO_SKEY_B64)
    assert seed[0] == 1
    signer = nacl.signing.SigningKey(seed[1:])
    assert bytes(signer.verify_key) == public
    note = sign_note(
        GO_TEXT, name=name, public_key=public, sign=lambda m: bytes(signer.sign(m).signature)
    )
    assert note == GO_NOTE
    assert verify_note(GO_NOTE, name=name, public_key=public) == GO_TEXT
    with pytest.raises(CheckpointError):
        verify_note(GO_NOTE.replace("cryptography", "cryptographY"), name=name, public_key=public)


@pytest.mark.parametrize(
    "vkey",
    [
        GO_VKEY.replace("c74f20a3", "c74f20a4"),  # key hash does not match
        GO_VKEY.replace("c74f20a3", "C74F20A3"),
        GO_VKEY.replace("+ARpc", "+AhpC"),  # another algorithm byte
        GO_VKEY[:-1],
        GO_VKEY + "=",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
        "",
    ],
)
def test_verifier_keys_are_parsed_strictly(vkey: str) -> None:
    with pytest.raises(CheckpointError):
        parse_verifier_key(vkey)


def test_signed_notes_are_parsed_strictly(key: nacl.signing.SigningKey) -> None:
    text = _signed(key, Checkpoint(NAME, 7, ROOT))
    public = bytes(key.verify_key)
    body, blob_line = text.split("\n\n")
    blob = blob_line.rstrip("\n").split(" ")[2]
    raw = base64.b64decode(blob)
    bad = [
        text.replace("\n", "\r\n"),  # a control character
        text.replace(NAME + "\n7", NAME + "\t\n7"),
        text.replace(blob, blob.rstrip("=")),  # base64 not canonical
        text.replace(blob, base64.b64encode(raw[:4]).decode()),  # no signature bytes
        text + "\u2014 other " + blob + "\n\n",
        body + "\n\n\n" + blob_line,  # two blank lines: the text ends in an empty line
        text.replace("\u2014 ", "\u2014  "),
        body + "\n" + "".join(f"\u2014 k{i} {blob}\n" for i in range(MAX_SIGNATURES + 1)),
    ]
    for note in bad:
        with pytest.raises(CheckpointError):
            verify_checkpoint(note, name=NAME, public_key=public)


def test_unknown_signatures_are_ignored_but_a_bad_one_by_our_key_rejects_the_note(
    key: nacl.signing.SigningKey,
) -> None:
    checkpoint = Checkpoint(NAME, 9, ROOT)
    text = _signed(key, checkpoint)
    public = bytes(key.verify_key)
    witness = nacl.signing.SigningKey(hashlib.sha256(b"witness").digest())
    cosigned = (
        text
        + sign_note(
            checkpoint.body(),
            name="witness.example/w1",
            public_key=bytes(witness.verify_key),
            sign=lambda m: bytes(witness.sign(m).signature),
        ).split("\n\n")[1]
    )
    assert len(parse_note(cosigned)[1]) == 2
    assert verify_checkpoint(cosigned, name=NAME, public_key=public) == checkpoint
    # A second line that claims our name and key hash but whose signature is wrong.
    forged = base64.b64encode(key_hash(NAME, public) + bytes(64)).decode()
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(text + f"\u2014 {NAME} {forged}\n", name=NAME, public_key=public)
    # Same name, other key hash: someone else's key; ignored.
    other = base64.b64encode(b"\x00\x00\x00\x00" + bytes(64)).decode()
    assert verify_checkpoint(text + f"\u2014 {NAME} {other}\n", name=NAME, public_key=public)


def test_checkpoints_that_cannot_be_written_are_refused() -> None:
    for bad in (
        Checkpoint("", 1, ROOT),
        Checkpoint("a\nb", 1, ROOT),
        Checkpoint(NAME, -1, ROOT),
        Checkpoint(NAME, 2**64, ROOT),
        Checkpoint(NAME, 1, ROOT[:31]),
        Checkpoint(NAME, 1, ROOT, ("",)),
        Checkpoint(NAME, 1, ROOT, ("x\ny",)),
    ):
        with pytest.raises(CheckpointError):
            bad.body()
