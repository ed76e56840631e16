"""Step 6 of `accord demo --story` (issue 24, docs/agreements.md): the VSP and the
police countersign a protocol sharing identity and contact for investigations, not
needs; the police cannot widen it alone; the VSP withdraws its signature, the next
delivery to the police withholds, and the police are told.

Real calls through the client library, fictional values, field names printed only."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from accord_client.api import AccordClient
from accord_client.api_models import ConsentDraft, PermissionDeniedError
from accord_client.envelope import PlainField  # noqa: TID251 - the command side, never served

from service.sandbox.federation import PROTOCOL_CATEGORIES, PROTOCOL_NAME
from service.sandbox.remote import SandboxError
from service.sandbox.setup import Sandbox
from service.sandbox.signing import countersign

POLICE_FIELDS = (
    PlainField(name="full_name", category="identity", value="Demo Person (fictional)"),
    PlainField(name="phone", category="contact", value="+1-555-0100"),
)


@dataclass
class ProtocolResult:
    version: int = 0
    widening_refused: bool = False
    needs_outlook: str = ""
    missing_signature: str = ""
    released_before: list[str] = field(default_factory=list)
    withheld_after: list[str] = field(default_factory=list)
    police_told: bool = False


def _agreement(now: datetime, categories: list[str]) -> dict[str, Any]:
    return {
        "flows": [
            {
                "from_sector": "victim_services",
                "to_sector": "law_enforcement",
                "purposes": ["investigation"],
                "categories": categories,
            }
        ],
        "effective_from": (now - timedelta(minutes=1)).isoformat(),
        "effective_to": (now + timedelta(days=365)).isoformat(),
        "document_sha256": hashlib.sha256(b"Demo VSP-police investigations protocol").hexdigest(),
    }


def _told(police: AccordClient, vsp_id: str) -> bool:
    """Whether the police's feed holds the VSP's withdrawal (every page read)."""
    after, told = 0, False
    while True:
        page = police.events(after=after, limit=200)
        told = told or any(
            e["type"] == "agreement.signature_withdrawn" and e["data"].get("org_id") == vsp_id
            for e in page.items
        )
        if not page.items:
            return told
        after = page.next_after


def _protocol_id(client: AccordClient) -> str:
    for collab in client.iter_collaborations():
        if collab["name"] == PROTOCOL_NAME:
            return str(collab["id"])
    raise SandboxError("the demo's VSP-police protocol is missing: run `accord demo` again")


def run_protocol_story(
    sandbox: Sandbox, *, say: Callable[[str], None], now: datetime
) -> ProtocolResult:
    result = ProtocolResult()
    orgs = sandbox.organizations
    with (
        sandbox.client("platform-admin") as platform,
        sandbox.client("vsp-admin") as vsp_admin,
        sandbox.client("police-admin") as police_admin,
        sandbox.client("vsp-caseworker") as vsp,
        sandbox.client("police-caseworker") as police,
    ):
        say("6. The VSP and the police countersign an investigations protocol.")
        pid = _protocol_id(vsp_admin)
        platform.set_agreement(pid, _agreement(now, PROTOCOL_CATEGORIES))
        for org, admin in (("vsp", vsp_admin), ("police", police_admin)):
            signed = countersign(admin, pid, orgs[org], sandbox.keys[org])
            if signed is None:
                raise SandboxError(f"the {org} found nothing to sign")
            result.version = signed
        say(
            f"   Version {result.version}: identity and contact, for investigations; not needs."
            " Each organization's admin signed it with its own key, on its own machine."
        )
        try:
            police_admin.set_agreement(pid, _agreement(now, [*PROTOCOL_CATEGORIES, "needs"]))
        except PermissionDeniedError:
            result.widening_refused = True
        say("   The police's admin tries to add needs to it: refused (403).")
        platform.set_agreement(pid, _agreement(now, [*PROTOCOL_CATEGORIES, "needs"]))
        countersign(police_admin, pid, orgs["police"], sandbox.keys["police"])
        explained = vsp.explain_policy(
            recipient_org_id=orgs["police"],
            purpose="investigation",
            legal_basis="consent",
            categories=["needs"],
            consent={
                "recipients": [orgs["police"]],
                "purposes": ["investigation"],
                "categories": ["needs"],
                "expires_at": (now + timedelta(days=30)).isoformat(),
            },
        )
        result.needs_outlook = explained["decisions"][0]["decision"]
        missing = [m for a in explained.get("agreements", []) for m in a["missing_signatures"]]
        result.missing_signature = ", ".join(str(m["org_id"]) for m in missing)
        say(
            "   Even proposed by the platform and signed by the police, the widened version "
            f"binds nobody: needs -> {result.needs_outlook}; missing signature: the VSP "
            f"({result.missing_signature})."
        )
        subject = vsp.create_subject()
        consent = vsp.create_consent(
            subject["id"],
            ConsentDraft(
                recipients=(orgs["police"],),
                purposes=("investigation",),
                categories=("contact", "identity"),
                expires_at=now + timedelta(days=30),
                method="written",
                language="en",
                evidence_sha256=hashlib.sha256(b"demo police consent form").hexdigest(),
            ),
        )
        referral = vsp.send_referral(
            keys=sandbox.keys["vsp"],
            recipient_org_id=orgs["police"],
            subject_id=subject["id"],
            consent_id=consent["id"],
            purpose="investigation",
            fields=POLICE_FIELDS,
        )
        received = police.receive_referral(referral["id"], sandbox.keys["police"])
        result.released_before = sorted(received.opened.values)
        say(
            "   With the survivor's consent the VSP refers to the police; delivered and "
            f"opened: {', '.join(result.released_before)}."
        )
        vsp_admin.withdraw_agreement_signature(pid, orgs["vsp"])
        say("   The VSP withdraws its signature of the protocol.")
        again = police.deliver_referral(referral["id"])
        result.withheld_after = sorted(str(w["name"]) for w in again.get("withheld", []))
        say(
            f"   The next delivery to the police withholds {', '.join(result.withheld_after)} "
            f"and releases {len(again.get('released', []))} fields."
        )
        result.police_told = _told(police, orgs["vsp"])
        say(
            "   The police's event feed says so (agreement.signature_withdrawn): "
            + ("told." if result.police_told else "NOT told.")
        )
    return result
