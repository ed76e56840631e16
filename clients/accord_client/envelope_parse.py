"""Strict parsing of envelopes and deliveries: structure, limits, base64, duplicates.

Pure (no nacl) and shared: the service parses submitted envelopes with it and
the client parses envelopes and deliveries with it, so the two accept exactly
the same documents. Every problem is collected with its JSON path so one
answer lists everything wrong. Paths and messages never echo values.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence

from accord_client.envelope_errors import Problem
from accord_client.envelope_format import (
    DIGEST_BYTES,
    KEY_COMMITMENT_BYTES,
    MAX_CIPHERTEXT_BYTES,
    MAX_FIELDS,
    MAX_NAME_LENGTH,
    MAX_TOTAL_CIPHERTEXT_BYTES,
    MIN_CIPHERTEXT_BYTES,
    MIN_FIELDS,
    SEALED_KEY_BYTES,
    SIGNATURE_BYTES,
    VERSION,
    Delivery,
    Envelope,
    EnvelopeContext,
    EnvelopeField,
    EnvelopeHeader,
    ManifestEntry,
    b64decode_strict,
)
from accord_client.strict_json import MAX_PROBLEMS, child_path

HEADER_KEYS = (
    "version",
    "sender_org",
    "sender_key_id",
    "recipient_org",
    "recipient_key_id",
    "context",
)
ENVELOPE_KEYS = (*HEADER_KEYS, "fields", "signature")
CONTEXT_KEYS = ("subject_id", "purpose", "consent_id", "request_id")
FIELD_KEYS = ("name", "category", "ciphertext", "sealed_key", "key_commitment")
WITHHELD_KEYS = (
    "name",
    "category",
    "digest",
    "ciphertext_sha256",
    "sealed_key_sha256",
    "key_commitment",
)
DELIVERY_KEYS = ("envelope_header", "released", "withheld", "signature", "sender_key_id")

# Names, categories and purposes: lowercase ASCII only, so spelling games
# (case, homoglyphs, NFD, zero-width characters; SECURITY-TESTS C04) cannot
# produce a second spelling of a protected category.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
KEY_ID_PATTERN = re.compile(r"[0-9a-f]{32}")


B64Decoder = Callable[[str], bytes]

# A key that is absent: already reported as "missing" by _Checker.mapping, so the
# value checks stay silent instead of adding a second problem at the same path.
_ABSENT = object()


class _Checker:
    """Accumulates problems while reading one document."""

    def __init__(self, b64decode: B64Decoder) -> None:
        self.problems: list[Problem] = []
        self._b64decode = b64decode

    def add(self, path: str, code: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(path, code, message))

    def mapping(
        self, value: object, path: str, keys: Sequence[str], *, allow_extra: bool = False
    ) -> Mapping[str, object] | None:
        if not isinstance(value, Mapping):
            self.add(path, "type", "must be an object")
            return None
        if not allow_extra:
            for key in value:
                if key not in keys:
                    self.add(child_path(path, str(key)), "unknown_key", "unknown key")
        for key in keys:
            if key not in value:
                self.add(f"{path}.{key}", "missing", "is required")
        return value

    def text(
        self,
        value: object,
        path: str,
        pattern: re.Pattern[str],
        rule: str,
        *,
        nullable: bool = False,
    ) -> str | None:
        if value is _ABSENT or (value is None and nullable):
            return None
        if not isinstance(value, str):
            self.add(path, "type", "must be a string" + (" or null" if nullable else ""))
            return None
        if len(value) > MAX_NAME_LENGTH or not pattern.fullmatch(value):
            self.add(path, "format", f"must be {rule}")
            return None
        return value

    def b64(self, value: object, path: str, *, minimum: int, maximum: int) -> bytes | None:
        if value is _ABSENT:
            return None
        if not isinstance(value, str):
            self.add(path, "type", "must be a base64 string")
            return None
        # Bound the work before decoding: 4 characters per 3 bytes, padded.
        if len(value) > 4 * ((maximum + 2) // 3):
            self.add(path, "limit", f"decodes to more than {maximum} bytes")
            return None
        try:
            raw = self._b64decode(value)
        except ValueError:
            self.add(
                path, "base64", "must be strict standard base64 (canonical padding, no whitespace)"
            )
            return None
        if minimum == maximum and len(raw) != minimum:
            self.add(path, "length", f"must decode to exactly {minimum} bytes")
            return None
        if not minimum <= len(raw) <= maximum:
            self.add(path, "limit", f"must decode to {minimum}..{maximum} bytes")
            return None
        return raw


_Rule = tuple[re.Pattern[str], str, bool]  # pattern, rule text, nullable
_UUID: _Rule = (UUID_PATTERN, "a lowercase hyphenated UUID", False)
_UUID_OR_NULL: _Rule = (UUID_PATTERN, "a lowercase hyphenated UUID", True)
_KEY_ID: _Rule = (KEY_ID_PATTERN, "32 lowercase hex characters", False)
_NAME: _Rule = (
    NAME_PATTERN,
    f"1..{MAX_NAME_LENGTH} characters of [a-z0-9_] starting with a letter",
    False,
)
_HEADER_SPEC = (
    ("sender_org", _UUID),
    ("sender_key_id", _KEY_ID),
    ("recipient_org", _UUID),
    ("recipient_key_id", _KEY_ID),
)
_CONTEXT_SPEC = (
    ("subject_id", _UUID),
    ("purpose", _NAME),
    ("consent_id", _UUID_OR_NULL),
    ("request_id", _UUID_OR_NULL),
)
_LABEL_SPEC = (("name", _NAME), ("category", _NAME))


def _version_supported(c: _Checker, m: Mapping[str, object], path: str) -> bool:
    """False only for a well-typed but unknown version: nothing else is then meaningful."""
    version = m.get("version", _ABSENT)
    if "version" not in m:
        return True  # reported as missing by mapping()
    if type(version) is not int:  # bool is an int subclass: refuse true/false too
        c.add(f"{path}.version", "type", "must be an integer")
        return True
    if version != VERSION:
        c.problems = [
            Problem(
                f"{path}.version", "unsupported_version", f"only version {VERSION} is supported"
            )
        ]
        return False
    return True


def _texts(
    c: _Checker, m: Mapping[str, object], path: str, spec: Sequence[tuple[str, _Rule]]
) -> dict[str, str | None]:
    """Check each named string member; absent members were already reported."""
    return {
        key: c.text(m.get(key, _ABSENT), f"{path}.{key}", pattern, rule, nullable=nullable)
        for key, (pattern, rule, nullable) in spec
    }


def _header(c: _Checker, m: Mapping[str, object], path: str) -> EnvelopeHeader | None:
    top = _texts(c, m, path, _HEADER_SPEC)
    context: EnvelopeContext | None = None
    if "context" in m:  # a missing context was reported by mapping()
        ctx = c.mapping(m["context"], f"{path}.context", CONTEXT_KEYS)
        if ctx is not None:
            v = _texts(c, ctx, f"{path}.context", _CONTEXT_SPEC)
            subject, purpose = v["subject_id"], v["purpose"]
            if subject is not None and purpose is not None:
                context = EnvelopeContext(
                    subject_id=subject,
                    purpose=purpose,
                    consent_id=v["consent_id"],
                    request_id=v["request_id"],
                )
    sender_org, sender_key = top["sender_org"], top["sender_key_id"]
    recipient_org, recipient_key = top["recipient_org"], top["recipient_key_id"]
    if sender_org is None or sender_key is None or context is None:
        return None
    if recipient_org is None or recipient_key is None:
        return None
    return EnvelopeHeader(
        sender_org=sender_org,
        sender_key_id=sender_key,
        recipient_org=recipient_org,
        recipient_key_id=recipient_key,
        context=context,
    )


def _fixed(c: _Checker, m: Mapping[str, object], path: str, key: str, size: int) -> bytes | None:
    return c.b64(m.get(key, _ABSENT), f"{path}.{key}", minimum=size, maximum=size)


def _field(c: _Checker, value: object, path: str) -> EnvelopeField | None:
    m = c.mapping(value, path, FIELD_KEYS)
    if m is None:
        return None
    labels = _texts(c, m, path, _LABEL_SPEC)
    ciphertext = c.b64(
        m.get("ciphertext", _ABSENT),
        f"{path}.ciphertext",
        minimum=MIN_CIPHERTEXT_BYTES,
        maximum=MAX_CIPHERTEXT_BYTES,
    )
    sealed = _fixed(c, m, path, "sealed_key", SEALED_KEY_BYTES)
    commitment = _fixed(c, m, path, "key_commitment", KEY_COMMITMENT_BYTES)
    name, category = labels["name"], labels["category"]
    if name is None or category is None or ciphertext is None:
        return None
    if sealed is None or commitment is None:
        return None
    return EnvelopeField(
        name=name,
        category=category,
        ciphertext=ciphertext,
        sealed_key=sealed,
        key_commitment=commitment,
    )


def _withheld(c: _Checker, value: object, path: str) -> ManifestEntry | None:
    # Extra keys (reasons, policies, anything the service adds) are unsigned
    # metadata: allowed and ignored. Everything that feeds the digest is strict.
    m = c.mapping(value, path, WITHHELD_KEYS, allow_extra=True)
    if m is None:
        return None
    labels = _texts(c, m, path, _LABEL_SPEC)
    digest, ct_hash, sk_hash, commitment = (
        _fixed(c, m, path, key, DIGEST_BYTES) for key in WITHHELD_KEYS[2:]
    )
    name, category = labels["name"], labels["category"]
    if name is None or category is None or digest is None:
        return None
    if ct_hash is None or sk_hash is None or commitment is None:
        return None
    entry = ManifestEntry(
        name=name,
        category=category,
        ciphertext_sha256=ct_hash,
        sealed_key_sha256=sk_hash,
        key_commitment=commitment,
    )
    if entry.digest() != digest:
        c.add(
            f"{path}.digest",
            "digest_mismatch",
            "does not match the entry's name, category and hashes",
        )
        return None
    return entry


def _check_order(c: _Checker, names: Sequence[tuple[str, str]]) -> None:
    """Names strictly ascending: unique, and one canonical order for the manifest."""
    for (prev, _), (name, path) in itertools.pairwise(names):
        if name == prev:
            c.add(path, "duplicate_name", "field names must be unique")
        elif name < prev:
            c.add(path, "order", "fields must be in strictly ascending order of name")


def _field_list(
    c: _Checker, value: object, path: str, *, minimum: int
) -> list[EnvelopeField] | None:
    if not isinstance(value, list):
        c.add(path, "type", "must be an array")
        return None
    if not minimum <= len(value) <= MAX_FIELDS:
        c.add(path, "limit", f"must hold {minimum}..{MAX_FIELDS} fields")
        return None
    parsed = [_field(c, item, f"{path}[{i}]") for i, item in enumerate(value)]
    fields = [f for f in parsed if f is not None]
    if sum(len(f.ciphertext) for f in fields) > MAX_TOTAL_CIPHERTEXT_BYTES:
        c.add(
            path, "limit", f"ciphertexts exceed {MAX_TOTAL_CIPHERTEXT_BYTES} decoded bytes in total"
        )
    _check_order(c, [(f.name, f"{path}[{i}].name") for i, f in enumerate(parsed) if f is not None])
    return fields if len(fields) == len(parsed) else None


def parse_envelope_obj(
    obj: object, *, root: str = "envelope", b64decode: B64Decoder = b64decode_strict
) -> tuple[Envelope | None, tuple[Problem, ...]]:
    """Read a submitted envelope. Returns (envelope, ()) or (None, every problem found)."""
    c = _Checker(b64decode)
    m = c.mapping(obj, root, ENVELOPE_KEYS)
    if m is None or not _version_supported(c, m, root):
        return None, tuple(c.problems)
    header = _header(c, m, root)
    fields = (
        _field_list(c, m.get("fields", _ABSENT), f"{root}.fields", minimum=MIN_FIELDS)
        if "fields" in m
        else None
    )
    signature = _fixed(c, m, root, "signature", SIGNATURE_BYTES)
    if c.problems or header is None or fields is None or signature is None:
        return None, tuple(c.problems)
    return Envelope(header=header, fields=tuple(fields), signature=signature), ()


def parse_delivery_obj(
    obj: object, *, root: str = "delivery", b64decode: B64Decoder = b64decode_strict
) -> tuple[Delivery | None, tuple[Problem, ...]]:
    """Read a deliver response. Unsigned extra keys at the top level are ignored."""
    c = _Checker(b64decode)
    m = c.mapping(obj, root, DELIVERY_KEYS, allow_extra=True)
    if m is None:
        return None, tuple(c.problems)
    hpath = f"{root}.envelope_header"
    hm = (
        c.mapping(m.get("envelope_header", _ABSENT), hpath, HEADER_KEYS)
        if "envelope_header" in m
        else None
    )
    if hm is not None and not _version_supported(c, hm, hpath):
        return None, tuple(c.problems)
    header = _header(c, hm, hpath) if hm is not None else None
    released = (
        _field_list(c, m.get("released", _ABSENT), f"{root}.released", minimum=0)
        if "released" in m
        else None
    )
    withheld_raw = m.get("withheld", _ABSENT)
    withheld: list[ManifestEntry] | None = None
    if withheld_raw is _ABSENT:
        pass
    elif not isinstance(withheld_raw, list) or len(withheld_raw) > MAX_FIELDS:
        c.add(f"{root}.withheld", "type", f"must be an array of at most {MAX_FIELDS} entries")
    else:
        entries = [
            _withheld(c, item, f"{root}.withheld[{i}]") for i, item in enumerate(withheld_raw)
        ]
        withheld = [e for e in entries if e is not None] if None not in entries else None
    signature = _fixed(c, m, root, "signature", SIGNATURE_BYTES)
    if header is not None and "sender_key_id" in m and m["sender_key_id"] != header.sender_key_id:
        c.add(f"{root}.sender_key_id", "mismatch", "must equal envelope_header.sender_key_id")
    if released is not None and withheld is not None:
        names = sorted(
            [(f.name, f"{root}.released") for f in released]
            + [(e.name, f"{root}.withheld") for e in withheld]
        )
        if not MIN_FIELDS <= len(names) <= MAX_FIELDS:
            c.add(root, "limit", f"must cover {MIN_FIELDS}..{MAX_FIELDS} fields")
        _check_order(c, names)
    if c.problems or header is None or released is None or withheld is None or signature is None:
        return None, tuple(c.problems)
    return (
        Delivery(
            header=header,
            released=tuple(released),
            withheld=tuple(withheld),
            signature=signature,
        ),
        (),
    )
