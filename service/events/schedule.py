"""When a failed webhook delivery is tried again: exponential backoff with jitter over
about three days, then the delivery has failed and its endpoint is marked failing.

The steps follow the Standard Webhooks guidance (and Svix's schedule it comes
from), stretched to three days so that a receiver down over a long weekend still
gets its events: 5 s, 5 min, 30 min, 2 h, 5 h, then every 10 h, each step moved by up
to 20 % either way so that the retries of many deliveries that failed together (an
outage of one receiver) do not arrive together. Twelve attempts in all; the last
about 67.6 hours (2.8 days) after the first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Final

RETRY_DELAYS_SECONDS: Final = (5, 300, 1800, 7200, 18000, 36000, 36000, 36000, 36000, 36000, 36000)
MAX_ATTEMPTS: Final = len(RETRY_DELAYS_SECONDS) + 1
JITTER: Final = 0.2

# A uniform draw from [a, b] (secrets.SystemRandom().uniform by default; tests may
# pass a seeded one).
Uniform = Callable[[float, float], float]


def retry_delay(failed_attempts: int, uniform: Uniform) -> timedelta | None:
    """The wait after the `failed_attempts`-th failed attempt (1, 2, ...) before the
    next one; None when that was the last."""
    if failed_attempts < 1:
        raise ValueError("count failed attempts from 1")
    if failed_attempts >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS_SECONDS[failed_attempts - 1]
    return timedelta(seconds=base * uniform(1.0 - JITTER, 1.0 + JITTER))
