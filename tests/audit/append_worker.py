"""A separate process appending to the audit log (used by test_processes.py)."""

from __future__ import annotations

import asyncio
import sys

from service.audit.log import AuditEvent, append
from service.clock import SystemClock
from service.settings import Settings
from service.storage import make_engine, make_sessionmaker


async def main(url: str, worker: int, count: int, tasks: int) -> None:
    """`tasks` concurrent appenders in this process, each with its own connection,
    each appending `count` entries labelled `worker-<worker>`."""
    engine = make_engine(Settings(database_url=url, environment="test", database_pool_size=tasks))
    try:
        factory = make_sessionmaker(engine)

        async def appender(task: int) -> None:
            for i in range(count):
                async with factory() as session:
                    event = AuditEvent(
                        "test.process",
                        None,
                        actor_label=f"worker-{worker}",
                        details={"task": task, "i": i},
                    )
                    await append(session, event, clock=SystemClock())
                    await session.commit()

        await asyncio.gather(*(appender(t) for t in range(tasks)))
    finally:
        await engine.dispose()


if __name__ == "__main__":
    tasks = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), tasks))
