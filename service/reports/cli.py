"""`accord report`: fetch a collaboration's report from the running service with the
client library, as JSON or CSV; with `--breakdown`, every period of the deployment's
granularity within it too, one request each, with a progress bar on stderr."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

from accord_client._exceptions import AccordAPIError
from accord_client.api import AccordClient
from tqdm import tqdm

from service.reports.schemas import Granularity, Period, finer_or_same


class ReportCommandError(Exception):
    """What the command says on stderr before it exits non-zero (no survivor data)."""


def _periods(period: Period, granularity: Granularity, breakdown: bool) -> list[Period]:
    if not breakdown or not finer_or_same(granularity, period.granularity):
        return [period]
    parts = period.split(granularity)
    return [*parts, period] if len(parts) > 1 else parts


def run_report(
    *,
    url: str,
    token: str,
    collab_id: uuid.UUID,
    period_text: str,
    as_csv: bool,
    breakdown: bool,
    output: Path | None,
    client_factory: Callable[..., AccordClient] = AccordClient,
) -> int:
    """Fetch and write; returns the number of reports fetched."""
    try:
        period = Period.parse(period_text)
    except ValueError as exc:
        raise ReportCommandError(f"--period: {exc}") from None
    with client_factory(base_url=url, token=token) as client:
        try:
            first: dict[str, Any] = dict(
                client.get_collaboration_report(collab_id, period=period.label)
            )
            periods = _periods(period, Granularity(first["granularity"]), breakdown)
            bar = tqdm(periods, desc="report", unit="period", file=sys.stderr, leave=False)
            texts: list[bytes] = []
            reports: list[dict[str, Any]] = []
            for p in bar:
                bar.set_postfix_str(p.label)
                if as_csv:
                    sink = BytesIO()
                    client.export_collaboration_report(collab_id, sink, period=p.label)
                    texts.append(sink.getvalue())
                elif p == period:
                    reports.append(first)
                else:
                    reports.append(dict(client.get_collaboration_report(collab_id, period=p.label)))
        except AccordAPIError as exc:
            raise ReportCommandError(str(exc)) from None
    if as_csv:
        # One header line, then every period's rows.
        lines = [texts[0].split(b"\r\n", 1)[0] + b"\r\n"]
        lines += [t.split(b"\r\n", 1)[1] for t in texts]
        data = b"".join(lines)
    else:
        body: Any = reports[0] if len(reports) == 1 else reports
        data = (json.dumps(body, indent=2) + "\n").encode()
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        output.write_bytes(data)
    return len(periods)
