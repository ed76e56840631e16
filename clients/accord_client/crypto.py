"""The only client module that imports nacl: seal, open, sign, verify, derive.

Survivor data is encrypted and decrypted only in this library (DESIGN.md
guarantee 1). Public functions take no nonce, key-generation randomness or
algorithm parameters: every nonce and data key comes from libsodium's
randombytes (the OS CSPRNG) inside this module. `_seal_value_with` is a private
hook for test vectors only.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

import nacl.bindings
import nacl.exceptions
import nacl.pwhash
import nacl.signing

from accord_client.envelope_errors import (
    CommitmentMismatchError,
    DecryptionFailedError,
    InvalidKeyError,
)
from accord_client.envelope_format import (
    DATA_KEY_BYTES,
    FIELD_KEY_LABEL,
    KEY_COMMITMENT_BYTES,
    KEY_COMMITMENT_LABEL,
    NONCE_BYTES,
    SEALED_KEY_BYTES,
    TAG_BYTES,
)

ED25519_PUBLIC_KEY_BYTES = 32
ED25519_SEED_BYTES = 32
ED25519_SIGNATURE_BYTES = 64
X25519_KEY_BYTES = 32
SECRET_KEY_BYTES = 32
KDF_SALT_BYTES = nacl.pwhash.argon2id.SALTBYTES  # 16

# Argon2id work factors (libsodium's named profiles), for the key file (keys.py).
ARGON2ID_OPSLIMIT_INTERACTIVE = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
ARGON2ID_MEMLIMIT_INTERACTIVE = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
ARGON2ID_OPSLIMIT_MODERATE = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
ARGON2ID_MEMLIMIT_MODERATE = nacl.pwhash.argon2id.MEMLIMIT_MODERATE
ARGON2ID_OPSLIMIT_SENSITIVE = nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE
ARGON2ID_MEMLIMIT_SENSITIVE = nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Strict Ed25519 verification: canonical S, no small-order or off-curve keys."""
    if len(signature) != ED25519_SIGNATURE_BYTES or len(public_key) != ED25519_PUBLIC_KEY_BYTES:
        return False
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(public_key):
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True


# --- keys -------------------------------------------------------------------


def generate_x25519_private_key() -> bytes:
    return bytes(nacl.bindings.crypto_box_keypair()[1])


def x25519_public_key(private_key: bytes) -> bytes:
    if len(private_key) != X25519_KEY_BYTES:
        raise InvalidKeyError(f"X25519 private key must be {X25519_KEY_BYTES} bytes")
    return bytes(nacl.bindings.crypto_scalarmult_base(private_key))


def generate_ed25519_seed() -> bytes:
    return bytes(nacl.signing.SigningKey.generate().encode())


def ed25519_public_key(seed: bytes) -> bytes:
    if len(seed) != ED25519_SEED_BYTES:
        raise InvalidKeyError(f"Ed25519 seed must be {ED25519_SEED_BYTES} bytes")
    return bytes(nacl.signing.SigningKey(seed).verify_key)


def sign_ed25519(seed: bytes, message: bytes) -> bytes:
    if len(seed) != ED25519_SEED_BYTES:
        raise InvalidKeyError(f"Ed25519 seed must be {ED25519_SEED_BYTES} bytes")
    return bytes(nacl.signing.SigningKey(seed).sign(message).signature)


_CURVE25519_P = 2**255 - 19
# Any scalar works for the low-order probe: X25519 clamps it to a multiple of the
# cofactor, and that times a point of order 1, 2, 4 or 8 is the all-zero output.
_LOW_ORDER_PROBE = bytes(range(1, 33))


def validate_x25519_public_key(raw: bytes) -> None:
    """Reject wrong lengths, non-canonical encodings and low-order points (E10).

    Sealing to a low-order point gives an all-zero shared secret that anyone can
    compute. X25519 ignores the top bit and reduces u modulo p, so without the
    canonical check one key would have several spellings (and several key ids):
    an organization could register another's key as "its own" and pass a
    duplicate-key check while the other organization's private key opens it.
    """
    if len(raw) != X25519_KEY_BYTES:
        raise InvalidKeyError(f"X25519 public key must be {X25519_KEY_BYTES} bytes")
    if int.from_bytes(raw, "little") >= _CURVE25519_P:  # also catches the top bit set
        raise InvalidKeyError("X25519 public key is not canonically encoded (u >= p)")
    try:
        # libsodium returns -1 when the product is all zeros: the low-order case.
        nacl.bindings.crypto_scalarmult(_LOW_ORDER_PROBE, raw)
    except nacl.exceptions.RuntimeError as exc:
        raise InvalidKeyError("X25519 public key is a low-order point") from exc


def validate_ed25519_public_key(raw: bytes) -> None:
    if len(raw) != ED25519_PUBLIC_KEY_BYTES:
        raise InvalidKeyError(f"Ed25519 public key must be {ED25519_PUBLIC_KEY_BYTES} bytes")
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(raw):
        raise InvalidKeyError("Ed25519 public key is not a valid point of the prime-order subgroup")


# --- per-field encryption -----------------------------------------------------


def _keyed_blake2b(data_key: bytes, label: bytes) -> bytes:
    return bytes(
        nacl.bindings.crypto_generichash_blake2b_salt_personal(label, digest_size=32, key=data_key)
    )


def key_commitment(data_key: bytes) -> bytes:
    """BLAKE2b-256 keyed by the data key over a fixed label.

    BLAKE2b's keyed mode hashes the key as a whole first block (its length is in
    the parameter block), so two keys with one commitment would be a BLAKE2b
    collision: the commitment binds the ciphertext to one key, and so to one
    plaintext, which Poly1305 alone does not (invisible-salamander attacks).
    """
    return _keyed_blake2b(data_key, KEY_COMMITMENT_LABEL)


def _field_encryption_key(data_key: bytes) -> bytes:
    # The AEAD runs under a subkey, not the data key itself: one key, one use.
    return _keyed_blake2b(data_key, FIELD_KEY_LABEL)


@dataclass(frozen=True, slots=True, kw_only=True)
class SealedValue:
    ciphertext: bytes = field(repr=False)  # nonce || ciphertext || tag
    sealed_key: bytes = field(repr=False)
    key_commitment: bytes


def seal_value(value: bytes, *, associated_data: bytes, recipient_public_key: bytes) -> SealedValue:
    """Encrypt one value under a fresh data key and a fresh random nonce."""
    validate_x25519_public_key(recipient_public_key)
    data_key = nacl.bindings.randombytes(DATA_KEY_BYTES)
    nonce = nacl.bindings.randombytes(NONCE_BYTES)
    sealed_key = bytes(nacl.bindings.crypto_box_seal(data_key, recipient_public_key))
    return _seal_value_with(
        value,
        associated_data=associated_data,
        data_key=data_key,
        nonce=nonce,
        sealed_key=sealed_key,
    )


def _seal_value_with(
    value: bytes, *, associated_data: bytes, data_key: bytes, nonce: bytes, sealed_key: bytes
) -> SealedValue:
    """Deterministic core of seal_value. Test vectors only: never pass chosen nonces."""
    if len(data_key) != DATA_KEY_BYTES or len(nonce) != NONCE_BYTES:
        raise ValueError("data key and nonce have fixed sizes")
    body = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        value, associated_data, nonce, _field_encryption_key(data_key)
    )
    return SealedValue(
        ciphertext=nonce + bytes(body),
        sealed_key=sealed_key,
        key_commitment=key_commitment(data_key),
    )


def open_value(
    *,
    ciphertext: bytes,
    sealed_key: bytes,
    commitment: bytes,
    associated_data: bytes,
    recipient_private_key: bytes,
) -> bytes:
    """Unseal the data key, check it against the signed commitment, then decrypt.

    The commitment is checked before the AEAD is run so that a key the sender
    did not commit to is never used on the ciphertext (SECURITY-TESTS E11).
    """
    if (
        len(sealed_key) != SEALED_KEY_BYTES
        or len(commitment) != KEY_COMMITMENT_BYTES
        or len(ciphertext) < NONCE_BYTES + TAG_BYTES
    ):
        raise DecryptionFailedError("ciphertext, sealed key or commitment has the wrong size")
    public_key = x25519_public_key(recipient_private_key)
    try:
        data_key = nacl.bindings.crypto_box_seal_open(sealed_key, public_key, recipient_private_key)
    except nacl.exceptions.CryptoError as exc:
        raise DecryptionFailedError("sealed data key did not open with this private key") from exc
    if len(data_key) != DATA_KEY_BYTES or not hmac.compare_digest(
        key_commitment(data_key), commitment
    ):
        raise CommitmentMismatchError("unsealed data key does not match the signed key commitment")
    nonce, body = ciphertext[:NONCE_BYTES], ciphertext[NONCE_BYTES:]
    try:
        plaintext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            body, associated_data, nonce, _field_encryption_key(data_key)
        )
    except nacl.exceptions.CryptoError as exc:
        raise DecryptionFailedError("field ciphertext failed authentication") from exc
    return bytes(plaintext)


# --- passphrase-protected storage (the key file) -------------------------------


def new_kdf_salt() -> bytes:
    return bytes(nacl.bindings.randombytes(KDF_SALT_BYTES))


def argon2id_key(passphrase: bytes, salt: bytes, *, opslimit: int, memlimit: int) -> bytes:
    """A 32-byte key from a passphrase (Argon2id v1.3, libsodium crypto_pwhash)."""
    return bytes(
        nacl.pwhash.argon2id.kdf(
            SECRET_KEY_BYTES, passphrase, salt, opslimit=opslimit, memlimit=memlimit
        )
    )


def secret_seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """XChaCha20-Poly1305 with a fresh random nonce; returns nonce || ciphertext || tag."""
    nonce = nacl.bindings.randombytes(NONCE_BYTES)
    body = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext, associated_data, nonce, key
    )
    return nonce + bytes(body)


def secret_open(key: bytes, box: bytes, associated_data: bytes) -> bytes:
    nonce, body = box[:NONCE_BYTES], box[NONCE_BYTES:]
    if len(nonce) != NONCE_BYTES:
        raise DecryptionFailedError("sealed data is too short")
    try:
        return bytes(
            nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                body, associated_data, nonce, key
            )
        )
    except nacl.exceptions.CryptoError as exc:
        raise DecryptionFailedError("authentication failed") from exc
