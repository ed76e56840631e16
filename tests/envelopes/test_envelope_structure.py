"""SECURITY-TESTS E15 and G04, and the API's envelope rules: limits, version,
unknown and duplicate keys at any depth, strict base64, names and identifiers.
The server answers 422 (400 for non-JSON) naming each path; the client's
parser applies the very same rules. No problem message echoes a value."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from accord_client.envelope_errors import (
    EnvelopeMalformedError,
    UnsupportedVersionError,
)
from accord_client.envelope_format import (
    MAX_CIPHERTEXT_BYTES,
    MAX_FIELDS,
    MAX_TOTAL_CIPHERTEXT_BYTES,
    b64encode,
)
from accord_client.envelope_parse import parse_envelope_obj

from service.envelopes.verify import EnvelopeJSONError, EnvelopeRejectedError, parse_envelope

from .support import Party, open_as, seal


@pytest.fixture(scope="module")
def genuine(alice: Party, bob: Party) -> dict[str, Any]:
    return seal(alice, bob)


def _reject(doc: Any) -> dict[str, str]:
    """Server-side parse must refuse; returns {path: code}. The client parser must agree."""
    with pytest.raises(EnvelopeRejectedError) as info:
        parse_envelope(doc)
    body = info.value.problem()
    assert body["status"] == 422
    paths = {e["path"]: e["code"] for e in body["errors"]}
    parsed, problems = parse_envelope_obj(doc)
    assert parsed is None
    assert {p.path: p.code for p in problems} == paths
    assert "CANARY" not in json.dumps(body)
    return paths


def _field_of_size(genuine: dict[str, Any], size: int) -> dict[str, Any]:
    f: dict[str, Any] = copy.deepcopy(genuine["fields"][0])
    f["ciphertext"] = b64encode(b"\0" * size)
    return f


def test_E15_too_many_fields(genuine: dict[str, Any]) -> None:
    doc = copy.deepcopy(genuine)
    template = doc["fields"][0]
    doc["fields"] = [{**template, "name": f"f{i:04d}"} for i in range(MAX_FIELDS + 1)]
    assert _reject(doc) == {"envelope.fields": "limit"}


def test_E15_no_fields(genuine: dict[str, Any]) -> None:
    assert _reject({**genuine, "fields": []}) == {"envelope.fields": "limit"}


def test_E15_exactly_max_fields_is_structurally_fine(genuine: dict[str, Any]) -> None:
    doc = copy.deepcopy(genuine)
    doc["fields"] = [{**doc["fields"][0], "name": f"f{i:04d}"} for i in range(MAX_FIELDS)]
    assert len(parse_envelope(doc).fields) == MAX_FIELDS


@pytest.mark.parametrize("length", [65, 200])
def test_E15_name_over_maximum_length(genuine: dict[str, Any], length: int) -> None:
    doc = copy.deepcopy(genuine)
    doc["fields"][0]["name"] = "a" * length
    assert _reject(doc) == {"envelope.fields[0].name": "format"}


def test_E15_name_of_maximum_length_accepted(genuine: dict[str, Any]) -> None:
    doc = copy.deepcopy(genuine)
    doc["fields"][0]["name"] = "a" * 64
    assert parse_envelope(doc).fields[0].name == "a" * 64


def test_E15_ciphertext_over_maximum_size(genuine: dict[str, Any]) -> None:
    doc = copy.deepcopy(genuine)
    doc["fields"][0] = _field_of_size(genuine, MAX_CIPHERTEXT_BYTES + 1)
    assert _reject(doc) == {"envelope.fields[0].ciphertext": "limit"}


def test_E15_ciphertext_at_maximum_size_accepted(genuine: dict[str, Any]) -> None:
    doc = copy.deepcopy(genuine)
    doc["fields"][0] = _field_of_size(genuine, MAX_CIPHERTEXT_BYTES)
    assert len(parse_envelope(doc).fields[0].ciphertext) == MAX_CIPHERTEXT_BYTES


def test_E15_ciphertext_shorter_than_nonce_and_tag(genuine: dict[str, Any]) -> None:
    doc = copy.deepcopy(genuine)
    doc["fields"][0] = _field_of_size(genuine, 39)
    assert _reject(doc) == {"envelope.fields[0].ciphertext": "limit"}


def test_E15_total_ciphertext_over_maximum(genuine: dict[str, Any]) -> None:
    count = MAX_TOTAL_CIPHERTEXT_BYTES // MAX_CIPHERTEXT_BYTES + 1
    doc = copy.deepcopy(genuine)
    doc["fields"] = [
        {**_field_of_size(genuine, MAX_CIPHERTEXT_BYTES), "name": f"f{i}"} for i in range(count)
    ]
    assert _reject(doc) == {"envelope.fields": "limit"}


@pytest.mark.parametrize("version", [2, 0, -1, 10**6])
def test_E15_unknown_version_rejected_alone(
    genuine: dict[str, Any], version: int, alice: Party, bob: Party
) -> None:
    # Nothing else about an unknown version is meaningful, so nothing else is reported.
    doc = {**genuine, "version": version, "surprise": 1}
    assert _reject(doc) == {"envelope.version": "unsupported_version"}
    with pytest.raises(UnsupportedVersionError):
        open_as(bob, alice, doc)


@pytest.mark.parametrize("version", ["1", 1.0, True, None])
def test_version_must_be_the_integer_one(genuine: dict[str, Any], version: Any) -> None:
    assert _reject({**genuine, "version": version}) == {"envelope.version": "type"}


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ((), "envelope.x"),
        (("context",), "envelope.context.x"),
        (("fields", 0), "envelope.fields[0].x"),
    ],
)
def test_G04_unknown_key_at_every_depth(
    genuine: dict[str, Any], where: tuple[Any, ...], path: str
) -> None:
    doc = copy.deepcopy(genuine)
    target: Any = doc
    for step in where:
        target = target[step]
    target["x"] = "CANARY-value"
    assert _reject(doc) == {path: "unknown_key"}


def test_G04_unprintable_unknown_key_not_echoed(genuine: dict[str, Any]) -> None:
    doc = {**genuine, "CANARY \u202e<script>": 1}
    assert _reject(doc) == {"envelope.<unprintable key>": "unknown_key"}


@pytest.mark.parametrize(
    "key", ["version", "sender_org", "recipient_key_id", "context", "fields", "signature"]
)
def test_missing_top_level_key(genuine: dict[str, Any], key: str) -> None:
    doc = {k: v for k, v in genuine.items() if k != key}
    assert _reject(doc) == {f"envelope.{key}": "missing"}


def test_every_problem_listed_at_once(genuine: dict[str, Any]) -> None:
    doc = copy.deepcopy(genuine)
    doc["sender_org"] = "A" * 36
    doc["context"]["purpose"] = "Prosecution"
    del doc["context"]["request_id"]
    doc["fields"][1]["sealed_key"] = b64encode(b"\0" * 79)
    doc["fields"][2]["key_commitment"] = "not base64!"
    assert _reject(doc) == {
        "envelope.sender_org": "format",
        "envelope.context.purpose": "format",
        "envelope.context.request_id": "missing",
        "envelope.fields[1].sealed_key": "length",
        "envelope.fields[2].key_commitment": "base64",
    }


@pytest.mark.parametrize(
    "text",
    [
        "QR==",  # non-zero padding bits: a second spelling of "A"
        "QQ",  # missing padding
        "QQ==\n",  # trailing newline
        " QQ==",
        "QQ ==",
        "-_-_",  # URL-safe alphabet
        "QQ==QQ==",  # padding in the middle
        "ＡＡＡＡ",  # fullwidth letters
    ],
)
def test_strict_base64_rejected(genuine: dict[str, Any], text: str) -> None:
    doc = copy.deepcopy(genuine)
    doc["fields"][0]["key_commitment"] = text
    assert _reject(doc) == {"envelope.fields[0].key_commitment": "base64"}


def test_non_canonical_base64_of_a_real_sealed_key_rejected(genuine: dict[str, Any]) -> None:
    doc = copy.deepcopy(genuine)
    text = doc["fields"][0]["sealed_key"]
    assert text.endswith("=")  # 80 bytes leave two padding bits to abuse
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(text[-2])
    doc["fields"][0]["sealed_key"] = text[:-2] + alphabet[last ^ 1] + "="
    assert _reject(doc) == {"envelope.fields[0].sealed_key": "base64"}


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b'{"version":1,"version":1}', "envelope.version"),
        (b'{"context":{"purpose":"a","purpose":"b"}}', "envelope.context.purpose"),
        (b'{"fields":[{"name":"a","name":"b"}]}', "envelope.fields[0].name"),
    ],
)
def test_duplicate_keys_rejected_with_path(raw: bytes, path: str) -> None:
    with pytest.raises(EnvelopeRejectedError) as info:
        parse_envelope(raw)
    assert [(e.path, e.extra["code"]) for e in info.value.errors] == [(path, "duplicate_key")]


def test_duplicate_key_in_a_genuine_envelope_rejected(
    genuine: dict[str, Any], alice: Party, bob: Party
) -> None:
    text = json.dumps(genuine)
    # Two values for the purpose; a lenient parser would keep the second one.
    forged = text.replace('"purpose": "', '"purpose": "prosecution", "purpose": "', 1)
    with pytest.raises(EnvelopeRejectedError):
        parse_envelope(forged.encode())
    with pytest.raises(EnvelopeMalformedError):  # the client reads raw JSON just as strictly
        open_as(bob, alice, forged.encode())
    assert open_as(bob, alice, text.encode())  # control: the undoctored text opens


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"[1,]",
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b"\xef\xbb\xbf{}",
        b"\xff\xfe{\x00}\x00",
        b'{"a":"\xc3"}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_not_json_is_a_400(raw: bytes) -> None:
    with pytest.raises(EnvelopeJSONError) as info:
        parse_envelope(raw)
    assert info.value.status == 400


def test_over_size_body_refused_before_parsing() -> None:
    with pytest.raises(EnvelopeJSONError):
        parse_envelope(b" " * (1024 * 1024 + 1))


@pytest.mark.parametrize(
    "name",
    [
        "Phone",
        "phone ",
        "pho\u200bne",
        "ph\u043ene",
        "cafe\u0301",
        "1phone",
        "_phone",
        "",
        "ph-one",
    ],
)
def test_field_names_are_plain_lowercase_ascii(genuine: dict[str, Any], name: str) -> None:
    # SECURITY-TESTS C04 spelling games: case, spaces, zero-width, Cyrillic, NFD.
    doc = copy.deepcopy(genuine)
    doc["fields"][0]["name"] = name
    doc["fields"][0]["category"] = name
    assert _reject(doc) == {
        "envelope.fields[0].name": "format",
        "envelope.fields[0].category": "format",
    }


def test_field_order_and_uniqueness(genuine: dict[str, Any]) -> None:
    doc = copy.deepcopy(genuine)
    doc["fields"][0], doc["fields"][1] = doc["fields"][1], doc["fields"][0]
    assert _reject(doc) == {"envelope.fields[1].name": "order"}
    doc = copy.deepcopy(genuine)
    doc["fields"][1]["name"] = doc["fields"][0]["name"]
    assert _reject(doc) == {"envelope.fields[1].name": "duplicate_name"}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sender_org", "0B5E1C2A-4D3F-4E6A-9B8C-7D1E2F3A4B5C"),  # uppercase UUID
        ("recipient_org", "{0b5e1c2a-4d3f-4e6a-9b8c-7d1e2f3a4b5c}"),
        ("sender_key_id", "AB" * 16),
        ("recipient_key_id", "ab" * 17),
    ],
)
def test_identifiers_have_one_spelling(genuine: dict[str, Any], key: str, value: str) -> None:
    assert _reject({**genuine, key: value}) == {f"envelope.{key}": "format"}


@pytest.mark.parametrize("value", [None, 5, ["x"], {"a": 1}])
def test_field_entries_must_be_strings(genuine: dict[str, Any], value: Any) -> None:
    doc = copy.deepcopy(genuine)
    doc["fields"][0]["ciphertext"] = value
    assert _reject(doc) == {"envelope.fields[0].ciphertext": "type"}


@pytest.mark.parametrize("doc", [[], 1, None, True])
def test_envelope_must_be_an_object(doc: Any) -> None:
    assert _reject(doc) == {"envelope": "type"}


def test_problem_list_is_bounded(genuine: dict[str, Any]) -> None:
    doc = copy.deepcopy(genuine)
    doc["fields"] = [{"name": "Bad", "x": 1, "y": 2} for _ in range(MAX_FIELDS)]
    with pytest.raises(EnvelopeRejectedError) as info:
        parse_envelope(doc)
    assert len(info.value.errors) == 100
