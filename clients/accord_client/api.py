"""HTTP clients for the Accord API (docs: clients/README.md): `AccordClient` (sync)
and `AsyncAccordClient` (async), twins shaped like httpx.

Both build every request with the pure functions of `accord_client._protocol`, so
they send the same bytes and raise the same errors; a test checks that they expose
the same methods. Trust decisions:
- Retries only for idempotent calls (GET, PUT, POSTs with an Idempotency-Key): a
  non-idempotent POST (deliver, accept, revoke...) could act twice if repeated.
- Keys for sealing and verifying come from the directory only, never from a
  delivery response (SECURITY-TESTS E03).
"""

from accord_client._async_client import AsyncAccordClient
from accord_client._client import AccordClient
from accord_client._exceptions import AccordAPIError
from accord_client._http import DEFAULT_TIMEOUT, BearerAuth
from accord_client._protocol import RetryPolicy

__all__ = [
    "DEFAULT_TIMEOUT",
    "AccordAPIError",
    "AccordClient",
    "AsyncAccordClient",
    "BearerAuth",
    "RetryPolicy",
]
