"""How many audit exports may run at once (issue 22, item 10; docs/audit.md
"Exports"): per principal and in total on each app node, over the cap a 429 with
Retry-After before any database work. The stream itself is
service/audit/service.py's `export_stream`, which releases its slot when it ends."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from service.auth.principals import Principal
from service.errors import RateLimitedError

RETRY_AFTER_SECONDS = 5


@dataclass
class ExportSlots:
    """How many exports run at once on this node, in total and per principal."""

    total: int
    per_principal: int
    _running: Counter[tuple[str, str]] = field(default_factory=Counter)

    def acquire(self, principal: Principal) -> ExportSlot:
        key = (str(principal.org_id), principal.subject)
        if sum(self._running.values()) >= self.total or self._running[key] >= self.per_principal:
            raise RateLimitedError(RETRY_AFTER_SECONDS)
        self._running[key] += 1
        return ExportSlot(self, key)


@dataclass
class ExportSlot:
    slots: ExportSlots
    key: tuple[str, str]
    released: bool = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.slots._running[self.key] -= 1
        if self.slots._running[self.key] <= 0:
            del self.slots._running[self.key]
