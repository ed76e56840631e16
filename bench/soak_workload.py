"""The mixed workload of bench/soak.py: the federation it sets up, each kind of
request the clients make, the delivery-only phase it is held to, and the
per-minute figures. Field values are generated fixtures, not survivor data."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from accord_client.agreements import countersignature
from accord_client.envelope import PlainField, seal_envelope
from accord_client.keys import OrganizationKeys, generate_organization_keys

from service.auth.dev_tokens import issue_dev_token
from service.auth.principals import Role
from service.clock import SystemClock
from service.settings import Settings

CATEGORIES = ["identity", "contact", "language", "needs"]
# The collaboration's members: each registers its keys and signs the agreement.
MEMBERS = ("vsp", "shelter", "police")


class Federation:
    """Organizations, keys, tokens and the shared state the clients work on."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = SystemClock()
        self.orgs: dict[str, str] = {}
        self.keys: dict[str, OrganizationKeys] = {}
        self.subjects: list[str] = []
        self.consents: list[tuple[str, str]] = []  # (consent id, subject id), granted
        # The live ones, kept as they change: a list scanned on every send would make
        # the load generator itself slow down as the run goes on.
        self.live: list[tuple[str, str]] = []
        self.live_at: dict[str, int] = {}
        self.referrals: list[str] = []
        self.revoked: dict[str, float] = {}  # consent id -> when its revocation returned
        self.under: dict[str, str] = {}  # referral id -> consent id
        self.late_releases: list[str] = []  # deliveries after a revocation that released

    def headers(self, org: str, role: Role) -> dict[str, str]:
        token = issue_dev_token(
            self.settings,
            clock=self.clock,
            org_id=uuid.UUID(self.orgs[org]),
            roles=[role],
            sub=f"soak-{org}-{role.value}",
        )
        return {"Authorization": f"Bearer {token}"}

    def granted(self, consent: tuple[str, str]) -> None:
        self.consents.append(consent)
        self.live_at[consent[0]] = len(self.live)
        self.live.append(consent)

    def ended(self, consent_id: str) -> None:
        at = self.live_at.pop(consent_id, None)
        if at is None:
            return
        last = self.live.pop()
        if at < len(self.live):  # swap the last one into the hole
            self.live[at] = last
            self.live_at[last[0]] = at


async def bootstrap(http: httpx.AsyncClient, fed: Federation, platform: uuid.UUID) -> None:
    fed.orgs["platform"] = str(platform)
    admin = fed.headers("platform", Role.platform_admin)

    async def post(path: str, body: object, headers: dict[str, str]) -> dict[str, Any]:
        r = await http.post(path, json=body, headers=headers)
        if r.status_code not in (200, 201):
            raise SystemExit(f"bootstrap {path}: {r.status_code} {r.text[:300]}")
        data: dict[str, Any] = r.json()
        return data

    for name, sector in (
        ("vsp", "victim_services"),
        ("shelter", "shelter"),
        ("police", "law_enforcement"),
        ("oversight", "oversight"),
    ):
        org = await post("/v1/organizations", {"name": f"Soak {name}", "sector": sector}, admin)
        fed.orgs[name] = org["id"]
    now = datetime.now(UTC)
    collab = await post(
        "/v1/collaborations",
        {
            "name": "Soak task force",
            "agreement": {
                "flows": [
                    {
                        "from_sector": "victim_services",
                        "to_sector": "shelter",
                        "purposes": ["services_referral"],
                        "categories": CATEGORIES,
                    },
                    {
                        "from_sector": "victim_services",
                        "to_sector": "law_enforcement",
                        "purposes": ["investigation"],
                        "categories": ["identity", "contact"],
                    },
                ],
                "effective_from": (now - timedelta(days=1)).isoformat(),
                "document_sha256": "ab" * 32,
            },
            # Listed in the first version, so that each member can sign it.
            "members": [fed.orgs[member] for member in MEMBERS],
        },
        admin,
    )
    for name in MEMBERS:
        fed.keys[name] = generate_organization_keys(fed.orgs[name])
        r = await http.put(
            f"/v1/organizations/{fed.orgs[name]}/keys",
            json=fed.keys[name].public_registration(),
            headers=fed.headers(name, Role.org_admin),
        )
        if r.status_code != 200:
            raise SystemExit(f"bootstrap keys: {r.status_code} {r.text[:300]}")
    # An agreement binds the members that countersigned it (docs/agreements.md):
    # each member's org_admin signs the latest version with its own signing key.
    r = await http.get(f"/v1/collaborations/{collab['id']}/agreements", headers=admin)
    if r.status_code != 200:
        raise SystemExit(f"bootstrap agreements: {r.status_code} {r.text[:300]}")
    latest = r.json()["items"][0]
    for name in MEMBERS:
        signing = fed.keys[name].current_signing_key
        body = countersignature(collab["id"], latest, signing.key_id, signing.seed)
        path = f"/v1/collaborations/{collab['id']}/agreements/signatures"
        await post(path, body, fed.headers(name, Role.org_admin))


async def grant(http: httpx.AsyncClient, fed: Federation) -> tuple[str, str] | None:
    vsp = fed.headers("vsp", Role.caseworker)
    r = await http.post("/v1/subjects", json={}, headers=vsp)
    if r.status_code != 201:
        return None
    subject = r.json()["id"]
    fed.subjects.append(subject)
    r = await http.post(
        f"/v1/subjects/{subject}/consents",
        json={
            "recipients": [fed.orgs["shelter"]],
            "purposes": ["services_referral"],
            "categories": CATEGORIES,
            "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            "method": "written",
            "language": "en",
            "evidence_sha256": "cd" * 32,
        },
        headers=vsp,
    )
    if r.status_code != 201:
        return None
    return r.json()["id"], subject


async def send(http: httpx.AsyncClient, fed: Federation, consent: str, subject: str) -> int:
    fields = [
        PlainField(name=f"field_{i}", category=CATEGORIES[i % len(CATEGORIES)], value=f"v{i}")
        for i in range(8)
    ]
    envelope = seal_envelope(
        fields,
        sender_org=fed.orgs["vsp"],
        sender_signing_key=fed.keys["vsp"].current_signing_key.seed,
        recipient_org=fed.orgs["shelter"],
        recipient_encryption_key=fed.keys["shelter"].current_encryption_key.public_key,
        subject_id=subject,
        purpose="services_referral",
        consent_id=consent,
    )
    r = await http.post(
        "/v1/referrals",
        json={
            "subject_id": subject,
            "recipient_org_id": fed.orgs["shelter"],
            "consent_id": consent,
            "purpose": "services_referral",
            "services_requested": ["emergency_shelter"],
            "urgency": "urgent",
            "envelope": envelope,
        },
        headers=fed.headers("vsp", Role.caseworker),
    )
    if r.status_code == 201:
        fed.referrals.append(r.json()["id"])
        fed.under[r.json()["id"]] = consent
    elif os.environ.get("SOAK_DEBUG"):
        print(f"send: {r.status_code} {r.text[:400]}")
    return r.status_code


async def deliver(http: httpx.AsyncClient, fed: Federation) -> int:
    referral = random.choice(fed.referrals)
    consent = fed.under[referral]
    asked = time.monotonic()
    r = await http.post(
        f"/v1/referrals/{referral}/deliver", headers=fed.headers("shelter", Role.caseworker)
    )
    revoked_at = fed.revoked.get(consent)
    late = r.status_code == 200 and revoked_at is not None and revoked_at < asked
    if late and r.json()["released"]:
        fed.late_releases.append(referral)
    return r.status_code


async def revoke(http: httpx.AsyncClient, fed: Federation) -> int | None:
    if len(fed.live) < 3:
        return None  # keep a few live for sending
    consent, _ = fed.live[random.randrange(len(fed.live))]
    fed.ended(consent)
    r = await http.post(
        f"/v1/consents/{consent}/revoke",
        json={"reason": "withdrawn"},
        headers=fed.headers("vsp", Role.caseworker),
    )
    if r.status_code == 200:
        fed.revoked[consent] = time.monotonic()
    return r.status_code


async def one(http: httpx.AsyncClient, fed: Federation, counts: Counter[tuple[str, int]]) -> None:
    kind = random.choices(
        ["send", "deliver", "consent", "revoke", "read", "records", "subject", "export"],
        weights=[20, 35, 8, 4, 15, 8, 6, 4],
    )[0]
    if kind == "deliver" and not fed.referrals:
        kind = "consent"
    if kind == "send":
        if not fed.live:
            kind = "consent"
        else:
            consent, subject = random.choice(fed.live)
            counts[(kind, await send(http, fed, consent, subject))] += 1
            return
    if kind == "consent":
        granted = await grant(http, fed)
        counts[(kind, 201 if granted else 0)] += 1
        if granted:
            fed.granted(granted)
        return
    if kind == "deliver":
        counts[(kind, await deliver(http, fed))] += 1
    elif kind == "revoke":
        status = await revoke(http, fed)
        if status is not None:
            counts[(kind, status)] += 1
    elif kind == "read":
        box = random.choice(["sent", "received"])
        org = "vsp" if box == "sent" else "shelter"
        r = await http.get(f"/v1/referrals?box={box}", headers=fed.headers(org, Role.caseworker))
        counts[(kind, r.status_code)] += 1
        if r.status_code == 200 and r.json()["items"]:
            one = r.json()["items"][0]["id"]
            r = await http.get(f"/v1/referrals/{one}", headers=fed.headers(org, Role.caseworker))
            counts[(kind, r.status_code)] += 1
    elif kind == "records":
        r = await http.post(
            "/v1/records-requests",
            json={
                "holder_org_id": fed.orgs["vsp"],
                "subject_ref": f"REF-{random.randrange(10**6)}",
                "categories": ["identity", "contact"],
                "purpose": "investigation",
                "legal_basis": "consent",
                "justification": "Soak test request",
            },
            headers=fed.headers("police", Role.investigator),
        )
        counts[(kind, r.status_code)] += 1
    elif kind == "subject":
        r = await http.post("/v1/subjects", json={}, headers=fed.headers("vsp", Role.caseworker))
        counts[(kind, r.status_code)] += 1
    elif kind == "export":
        # An auditor's periodic export: its own organization's last minute.
        since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        r = await http.get(
            "/v1/audit/export", params={"since": since}, headers=fed.headers("vsp", Role.auditor)
        )
        counts[(kind, r.status_code)] += 1


async def deliveries_only(
    http: httpx.AsyncClient, fed: Federation, clients: int, seconds: float
) -> tuple[float, float, Counter[int]]:
    """(requests per second, load average, statuses): the same clients delivering
    only, on the same service: the figure the mixed workload is held to."""
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds

    async def client() -> None:
        while time.monotonic() < deadline:
            statuses[await deliver(http, fed)] += 1

    began = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    return sum(statuses.values()) / (time.monotonic() - began), os.getloadavg()[0], statuses


async def seed(http: httpx.AsyncClient, fed: Federation, referrals: int) -> None:
    """Enough live consents and referrals for a delivery-only phase first."""
    while len(fed.live) < 4:
        granted = await grant(http, fed)
        if granted is None:
            raise SystemExit("seeding: a consent was refused")
        fed.granted(granted)
    while len(fed.referrals) < referrals:
        consent, subject = random.choice(fed.live)
        status = await send(http, fed, consent, subject)
        if status != 201:
            raise SystemExit(f"seeding: a referral was refused ({status})")


def per_minute(done_at: list[float], loads: list[tuple[float, float]], minutes: float) -> None:
    """Requests per second in each minute of the mixed run, with the load average,
    and the last window against the first (issue 26: at least 0.9)."""
    whole = int(minutes * 60)
    per_second = [0] * (whole + 1)
    for t in done_at:
        per_second[min(int(t), whole)] += 1
    print("mixed workload, requests per second by minute (load average at its end):")
    for minute in range(max(1, int(minutes))):
        rate = sum(per_second[minute * 60 : (minute + 1) * 60]) / 60
        load = next((la for t, la in loads if t >= (minute + 1) * 60), loads[-1][1])
        print(f"  minute {minute + 1:3d}  {rate:7.1f} req/s  load {load:5.2f}")
    window = 300 if minutes >= 15 else max(1, whole // 3)
    first = sum(per_second[:window]) / window
    last = sum(per_second[whole - window : whole]) / window
    loads_first = [la for t, la in loads if t <= window] or [loads[0][1]]
    loads_last = [la for t, la in loads if t >= whole - window] or [loads[-1][1]]
    print(
        f"first {window} s: {first:.1f} req/s (load {sum(loads_first) / len(loads_first):.2f}); "
        f"last {window} s: {last:.1f} req/s (load {sum(loads_last) / len(loads_last):.2f}); "
        f"last/first {last / first if first else 0:.2f} (target >= 0.9)"
    )
