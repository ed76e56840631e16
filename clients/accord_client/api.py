"""HTTP clients for the Accord API (docs: clients/README.md): `AccordClient` (sync)
and `AsyncAccordClient` (async), twins shaped like httpx.

One source: the async modules are written by hand and the sync twin is generated
from them (clients/tools/unasync.py), so they send the same bytes and raise the
same errors; tests/client/test_client_surface.py checks that both have a method
for every `/v1` operation, with the same signatures. Trust decisions:
- Retries only for idempotent calls (GET, PUT, POSTs with an Idempotency-Key): a
  non-idempotent POST (deliver, accept, revoke...) could act twice if repeated.
- Keys for sealing and verifying come from the directory only, never from a
  delivery response (SECURITY-TESTS E03).
- Given a `CheckpointWitness`, every checkpoint read is verified and checked to
  extend the last one seen (DESIGN.md guarantee 4).
"""

from accord_client._async_client import AsyncAccordClient
from accord_client._client import AccordClient
from accord_client._exceptions import AccordAPIError
from accord_client._http import DEFAULT_TIMEOUT, BearerAuth
from accord_client._protocol import RetryPolicy
from accord_client.witness import CheckpointWitness

__all__ = [
    "DEFAULT_TIMEOUT",
    "AccordAPIError",
    "AccordClient",
    "AsyncAccordClient",
    "BearerAuth",
    "CheckpointWitness",
    "RetryPolicy",
]
