"""A separate process appending to the audit log (used by test_processes.py)."""

from __future__ import annotations

import asyncio
import sys

from service.audit.log import AuditEvent, append
from service.clock import SystemClock
from service.db import make_engine, make_sessionmaker
from service.settings import Settings


async def main(url: str, worker: int, count: int) -> None:
    engine = make_engine(Settings(database_url=url, environment="test"))
    try:
        factory = make_sessionmaker(engine)
        for i in range(count):
            async with factory() as session:
                event = AuditEvent(
                    "test.process", None, actor_label=f"worker-{worker}", details={"i": i}
                )
                await append(session, event, clock=SystemClock())
                await session.commit()
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
