"""`accord demo --story`: the demo federation's scenario, end to end, in plain words.

Every step is a real call to the running service through the client library, as a
case-management tool would make it; every value is fictional. The survivor's
data is sealed and opened on this machine (the service holds only ciphertext), so
the story prints field names, never values.

1. The victim-service provider (VSP) records a survivor's consent and refers them
   to the shelter.
2. The shelter's caseworker has the referral delivered, checks the VSP's signature
   against the directory and opens it.
3. The police ask the VSP for records and get the preliminary answer at once.
4. The survivor withdraws consent; a second delivery is withheld, with the reasons.
5. The oversight board's auditor exports the audit log and verifies it offline.
6. The VSP and the police countersign a protocol (identity and contact for
   investigations, not needs); the police cannot widen it alone; the VSP withdraws
   its signature and the next delivery to the police withholds (protocol_story.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from accord_client.api_models import ConsentDraft
from accord_client.audit_verify import verify_lines
from accord_client.checkpoint import parse_verifier_key
from accord_client.envelope import PlainField  # noqa: TID251 - the command side, never served

from service.sandbox.protocol_story import ProtocolResult, run_protocol_story
from service.sandbox.remote import SandboxError, create_records_request, export_audit_log
from service.sandbox.setup import Sandbox

# Fictional, and printed by name only.
REFERRAL_FIELDS = (
    PlainField(name="full_name", category="identity", value="Demo Person (fictional)"),
    PlainField(name="phone", category="contact", value="+1-555-0100"),
    PlainField(name="language", category="language", value="Tigrinya, some English"),
    PlainField(name="needs", category="needs", value="a bed for one adult tonight"),
)
RECORDS_CATEGORIES = ("identity", "contact", "case_summary", "counseling_notes")
OUTCOME_WORDS = {
    "allowed": "may be released on this basis",
    "needs_consent": "only with the survivor's consent",
    "never": "never released to the police",
}


@dataclass
class StoryResult:
    """What the story saw, for tests and for anyone scripting it."""

    referral_id: str = ""
    opened: list[str] = field(default_factory=list)
    preliminary: dict[str, str] = field(default_factory=dict)
    withheld: list[str] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)
    audit_entries: int = 0
    audit_root: str = ""
    actions: dict[str, int] = field(default_factory=dict)
    protocol: ProtocolResult = field(default_factory=ProtocolResult)


def run_story(
    sandbox: Sandbox, *, say: Callable[[str], None], now: datetime | None = None
) -> StoryResult:
    now = now or datetime.now(UTC)
    result = StoryResult()
    orgs = sandbox.organizations
    vsp_keys, shelter_keys = sandbox.keys["vsp"], sandbox.keys["shelter"]
    with (
        sandbox.client("vsp-caseworker") as vsp,
        sandbox.client("shelter-caseworker") as shelter,
        sandbox.client("police-investigator") as police,
    ):
        say("1. Harbor Victim Services (the VSP) meets a survivor and refers them to the shelter.")
        subject = vsp.create_subject()
        say(f"   The VSP's caseworker records the survivor as subject {subject['id']}:")
        say("   a random id; no name or birth date is ever stored by the service.")
        consent = vsp.create_consent(
            subject["id"],
            ConsentDraft(
                recipients=(orgs["shelter"],),
                purposes=("services_referral",),
                categories=tuple(sorted({f.category for f in REFERRAL_FIELDS})),
                expires_at=now + timedelta(days=90),
                method="written",
                language="en",
                evidence_sha256=hashlib.sha256(b"demo signed consent form").hexdigest(),
            ),
        )
        say(
            f"   The survivor consents in writing (consent {consent['id']}): the shelter may "
            "receive identity, contact, language and needs, for a services referral, for 90 days."
        )
        referral = vsp.send_referral(
            keys=vsp_keys,
            recipient_org_id=orgs["shelter"],
            subject_id=subject["id"],
            consent_id=consent["id"],
            purpose="services_referral",
            fields=REFERRAL_FIELDS,
            services_requested=["emergency_shelter"],
            urgency="urgent",
        )
        result.referral_id = referral["id"]
        names = ", ".join(f.name for f in REFERRAL_FIELDS)
        say(
            f"   On this machine the VSP seals {len(REFERRAL_FIELDS)} fields ({names}) to the "
            "shelter's key from the directory and signs them; the service receives "
            f"ciphertext only. Referral {referral['id']}: {referral['status']}."
        )

        say("2. The shelter's caseworker has the referral delivered and opens it.")
        received = shelter.receive_referral(referral["id"], shelter_keys)
        opened = dict(received.opened.values)
        if opened != {f.name: f.value for f in REFERRAL_FIELDS}:
            raise SandboxError("the opened referral does not hold what the VSP sealed")
        result.opened = sorted(opened)
        say(
            "   The service decided every field at the moment of release, and wrote the "
            f"disclosure to the audit log as entry {received.disclosure_seq}."
        )
        say(
            "   The shelter checked the VSP's signature with the key the directory lists "
            f"and decrypted {len(opened)} fields on its own machine: {', '.join(sorted(opened))}."
        )

        say("3. The police ask the VSP for records about the case.")
        request = create_records_request(
            police,
            {
                "holder_org_id": orgs["vsp"],
                "subject_ref": "demo-case-0042",
                "categories": list(RECORDS_CATEGORIES),
                "purpose": "investigation",
                "legal_basis": "consent",
                "justification": "Demo: a witness statement for a labor trafficking case.",
            },
        )
        say(
            f"   Records request {request['id']}: the service answers at once, from policy "
            "alone (the same answer whether or not the VSP holds anything):"
        )
        for item in request["preliminary"]:
            result.preliminary[item["category"]] = item["outcome"]
            why = f" ({', '.join(item['policies'])})" if item.get("policies") else ""
            words = OUTCOME_WORDS.get(item["outcome"], item["outcome"])
            say(f"   - {item['category']}: {words}{why}")

        say("4. The survivor withdraws consent; the shelter asks for the referral again.")
        vsp.revoke_consent(consent["id"], reason="survivor withdrew consent by phone")
        say(f"   The VSP records the withdrawal of consent {consent['id']}: in force at once.")
        again = shelter.deliver_referral(referral["id"])
        by_reason: dict[str, list[str]] = {}
        for item in again.get("withheld", []):
            result.withheld.append(item["name"])
            reasons = " ".join(str(r) for r in item.get("reasons", [])) or "withheld"
            by_reason.setdefault(reasons, []).append(item["name"])
        for reasons, fields in by_reason.items():
            say(f"   - withheld: {', '.join(fields)}. The reason given: {reasons}")
        say(
            f"   The second delivery released {len(again.get('released', []))} fields: "
            "consent is checked at every release, not only when a referral is sent."
        )
        seen = vsp.get_referral(referral["id"])
        result.timeline = [str(event["event"]) for event in seen.get("timeline", [])]
        say(f"   The VSP sees what became of its referral: {' -> '.join(result.timeline)}.")

    say("5. The oversight board's auditor exports the audit log and verifies it offline.")
    lines = export_audit_log(
        sandbox.base_url, sandbox.token("oversight-auditor"), transport=sandbox.transport
    )
    origin, public_key = parse_verifier_key(sandbox.audit_verifier_key)
    verified = verify_lines(lines, public_key=public_key, origin=origin)
    result.audit_entries = verified.size
    result.audit_root = base64.b64encode(verified.root).decode()
    result.actions = dict(Counter(_action(line) for line in lines[: verified.size]))
    say(
        f"   {verified.size} entries, each hash-chained to the one before, their Merkle root "
        f"{result.audit_root} signed by the service's audit key: verified on this machine."
    )
    say(
        f"   Among them {result.actions.get('disclosure', 0)} disclosure(s) and "
        f"{result.actions.get('withheld', 0)} withheld delivery(ies), with the consent, the "
        "referral and the records request: every step above, in order; changing or "
        "removing any entry makes this check fail."
    )
    result.protocol = run_protocol_story(sandbox, say=say, now=now)
    say(f"Done: the story ran against {sandbox.base_url}.")
    return result


def _action(line: bytes) -> str:
    document: dict[str, Any] = json.loads(line)
    return str(document.get("action", "?"))
