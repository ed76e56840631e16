"""Who may see a report, what it costs a refused caller (nothing), the audit entry
every report leaves, formula injection in the CSV, and bad periods."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid

import httpx
from sqlalchemy import select

from service.audit.models import AuditEntry
from service.auth.principals import Role
from service.collaborations.models import Collaboration
from tests.reports.conftest import Fed
from tests.support.databases import TestDatabase

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


async def _report_entries(fed: Fed) -> list[dict[str, object]]:
    async with fed.world.app.state.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "report.generated")
        )
        return [json.loads(e.body) for e in rows]


async def test_members_oversight_and_research_see_it_others_get_404(
    client: httpx.AsyncClient, fed: Fed
) -> None:
    w = fed.world
    for org, role in (("vsp", Role.caseworker), ("oversight", Role.auditor),
                      ("research", Role.auditor), ("police", Role.investigator)):  # fmt: skip
        response = await client.get(fed.url("2026-Q3"), headers=w.headers(org, role))
        assert response.status_code == 200, (org, response.text)
    # The test collaboration of tests/support/world.py: "research" is no member of it,
    # "unrelated" of neither; a platform admin of the government sector is no member.
    other = f"/v1/collaborations/{w.collaboration_id}/reports?period=2026-Q3"
    assert (await client.get(other, headers=w.headers("research", Role.auditor))).status_code == 404
    for org, role in (("unrelated", Role.auditor), ("platform", Role.platform_admin)):
        response = await client.get(fed.url("2026-Q3"), headers=w.headers(org, role))
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
    missing = f"/v1/collaborations/{uuid.uuid4()}/reports?period=2026-Q3"
    assert (await client.get(missing, headers=w.headers("vsp", Role.caseworker))).status_code == 404
    assert (await client.get(fed.url("2026-Q3"))).status_code == 401


async def test_research_principal_gets_aggregates_never_entries(
    client: httpx.AsyncClient, fed: Fed
) -> None:
    w = fed.world
    for role in Role:
        headers = w.headers("research", role)
        report = await client.get(fed.url("2026"), headers=headers)
        assert report.status_code == 200
        for rid in fed.truth.referral_ids[:5]:
            assert (await client.get(f"/v1/referrals/{rid}", headers=headers)).status_code in (
                403,
                404,
            )
        for qid in fed.truth.request_ids[:5]:
            got = await client.get(f"/v1/records-requests/{qid}", headers=headers)
            assert got.status_code == 404
    auditor = w.headers("research", Role.auditor)
    for box in ("sent", "received"):
        listed = await client.get(f"/v1/referrals?box={box}", headers=auditor)
        assert listed.status_code == 200, listed.text
        assert listed.json()["items"] == []
    entries = (await client.get("/v1/audit/entries?limit=200", headers=auditor)).json()["items"]
    assert "report.generated" in {e["action"] for e in entries}
    assert not {e["action"] for e in entries} & {"disclosure", "referral.sent", "request.created"}
    # Every report cell is an aggregate: a count or suppressed, never an identifier.
    body = (await client.get(fed.url("2026"), headers=auditor)).text
    for rid in fed.truth.referral_ids:
        assert str(rid) not in body


async def test_every_report_is_audited_with_its_digest(client: httpx.AsyncClient, fed: Fed) -> None:
    headers = fed.world.headers("research", Role.auditor, sub="funder-liaison")
    answer = await client.get(fed.url("2026-Q2"), headers=headers)
    csv_answer = await client.get(fed.url("2026-Q2"), headers={**headers, "Accept": "text/csv"})
    assert csv_answer.headers["content-type"].startswith("text/csv")
    entries = await _report_entries(fed)
    assert len(entries) == 2
    for entry, response, fmt in zip(entries, (answer, csv_answer), ("json", "csv"), strict=True):
        details = entry["details"]
        assert isinstance(details, dict)
        assert entry["actor"] == {
            "principal": "funder-liaison",
            "org": str(fed.world.orgs["research"]),
            "sector": "research",
        }
        assert details["collaboration_id"] == str(fed.collab_id)
        assert details["period"] == "2026-Q2"
        assert details["format"] == fmt
        if fmt == "json":
            assert details["report_sha256"] == hashlib.sha256(response.content).hexdigest()
    assert answer.headers["repr-digest"].startswith("sha-256=:")


async def test_csv_cells_are_neutralized(client: httpx.AsyncClient, fed: Fed) -> None:
    for start in DANGEROUS:
        await _check_neutralized(client, fed, start)


async def _check_neutralized(client: httpx.AsyncClient, fed: Fed, start: str) -> None:
    async with fed.world.app.state.sessionmaker() as session:
        collab = await session.get(Collaboration, fed.collab_id)
        assert collab is not None
        collab.name = f'{start}HYPERLINK("https://evil.example","x")'
        await session.commit()
    response = await client.get(
        fed.url("2026-Q1", format="csv"), headers=fed.world.headers("vsp", Role.caseworker)
    )
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert rows[0][0] == "collaboration"
    assert len(rows) > 50
    for row in rows:
        for value in row:
            assert not value.startswith(DANGEROUS), value
    assert rows[1][0] == "'" + collab.name


def test_neutralize_matches_owasp() -> None:
    from service.reports.csv_out import neutralize

    for start in DANGEROUS:
        assert neutralize(start + "cmd") == "'" + start + "cmd"
    for safe in ("shelter", "12", "", "'already", " =x"):
        assert neutralize(safe) == safe


BAD_QUERIES = [
    "period=2026-13", "period=2026-Q5", "period=2026-Q0", "period=26", "period=2026-07-01",
    "period=", "period=2026-Q3%3BDROP", "period=1999", "period=2026-W01", "period=%00",
    "period=2026-07",  # finer than the deployment publishes (quarter)
    "period=2027", "period=2027-Q1",  # not ended yet
    "period=2026&format=xml", "", "period=" + "9" * 40, "period=2026&period=2025-Q1x",
]  # fmt: skip


async def test_bad_period_is_a_422_problem_and_changes_nothing(
    client: httpx.AsyncClient, fed: Fed, db: TestDatabase
) -> None:
    before = db.dump()
    for query in BAD_QUERIES:
        url = f"/v1/collaborations/{fed.collab_id}/reports?{query}"
        response = await client.get(url, headers=fed.world.headers("vsp", Role.caseworker))
        assert response.status_code == 422, (query, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "DROP" not in response.text
    assert db.dump() == before
