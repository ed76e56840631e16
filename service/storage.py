"""The database as the service uses it: the plain engine and sessions of
service/db/, plus what the layers above the database hang on them.

- On PostgreSQL every connection listens for the numbers that the commit-time
  trigger reports for staged audit entries (service/audit/at_commit.py).
- The sessions of one sessionmaker share one cache of release inputs, valid for one
  policy epoch and safe to lose (service/disclosures/inputs.py).
- A consent revocation destroys the unreleased fields of every kind through the
  function the sessions carry (service/consents/ending.py, service/retention.py).
- An erasure revokes and destroys everything about its subject the same way
  (service/subjects/erasure.py, service/erasure.py).

The database layer imports nothing above it; this module, in the composition
layer with service/app.py and service/cli.py, joins them.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.audit import at_commit
from service.consents.ending import SHRED_UNRELEASED
from service.db.engine import engine_for, sessionmaker_for
from service.disclosures.inputs import CACHE_KEY, ReleaseInputCache
from service.erasure import erase_holdings
from service.retention import shred_for_revoked_grant
from service.settings import Settings
from service.subjects.erasure import ERASE_HOLDINGS


def make_engine(settings: Settings) -> AsyncEngine:
    engine = engine_for(settings)
    at_commit.install(engine)  # releases learn their entry's number at COMMIT
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return sessionmaker_for(
        engine,
        info={
            CACHE_KEY: ReleaseInputCache(),
            SHRED_UNRELEASED: shred_for_revoked_grant,
            ERASE_HOLDINGS: erase_holdings,
        },
    )
