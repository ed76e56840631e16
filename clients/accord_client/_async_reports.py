"""Collaboration reports: aggregate counts with small cells suppressed
(docs/reports.md), as JSON or as a CSV file.

Twin modules: `_async_reports` (the one source) and `_sync_reports`, generated
from it by clients/tools/unasync.py.
"""

from __future__ import annotations

from typing import IO, Any, cast

from accord_client._http import Id
from accord_client._protocol import RequestSpec, query
from accord_client.schemas import Report


class AsyncReportMethods:
    """Collaboration reports, for `AsyncAccordClient`."""

    async def request(self, spec: RequestSpec) -> Any:
        raise NotImplementedError  # the client's transport sends it

    async def stream_to(self, spec: RequestSpec, out: IO[bytes]) -> int:
        raise NotImplementedError  # the client's transport streams it

    async def get_collaboration_report(self, collab_id: Id, *, period: str) -> Report:
        """The report of one calendar period (`2026`, `2026-Q3` or `2026-07`, UTC) that
        has ended: counts under the threshold and their complements suppressed
        (`count` None). Members of the collaboration and the oversight sector."""
        spec = RequestSpec(
            "GET", f"/v1/collaborations/{collab_id}/reports", params=query(period=period)
        )
        return cast(Report, await self.request(spec))

    async def export_collaboration_report(
        self, collab_id: Id, out: IO[bytes], *, period: str
    ) -> int:
        """The same report as CSV (one line per cell, text neutralized against formula
        injection) written into `out` (a file opened "wb"); returns its size in bytes."""
        params = query(period=period, format="csv")
        spec = RequestSpec("GET", f"/v1/collaborations/{collab_id}/reports", params=params)
        return await self.stream_to(spec, out)
