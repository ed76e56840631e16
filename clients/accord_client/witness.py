"""Member organizations as each other's witnesses (DESIGN.md guarantee 4).

The client library remembers the latest checkpoint it has verified and checks
every new one: the signature with the service's published key, that the tree
never shrinks, and, given the server's consistency proof, that the new tree
extends the remembered one. A server that rewrote history, or showed different
logs to different members, is caught the next time a member looks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from accord_client.checkpoint import (
    Checkpoint,
    CheckpointError,
    parse_verifier_key,
    verify_checkpoint,
)
from accord_client.merkle import verify_consistency


class SplitViewError(CheckpointError):
    """The new checkpoint does not extend the remembered one: the log was rewritten
    or forked. Keep both checkpoints: they are the evidence."""


@dataclass
class CheckpointWitness:
    """Remembers the latest verified checkpoint in a small JSON file (or, with
    `state_file=None`, in memory for this process only)."""

    state_file: Path | None
    origin: str
    public_key: bytes
    _memory: Checkpoint | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_verifier_key(cls, state_file: Path | None, verifier_key: str) -> CheckpointWitness:
        """From the service's C2SP verifier key string (`<origin>+<hash>+<key>`), as
        published by its operator out of band: never take it from the checkpoint you
        are about to check."""
        origin, public_key = parse_verifier_key(verifier_key)
        return cls(state_file, origin, public_key)

    def latest(self) -> Checkpoint | None:
        if self.state_file is None:
            return self._memory
        if not self.state_file.exists():
            return None
        data = json.loads(self.state_file.read_text(encoding="utf-8"))
        return Checkpoint(data["origin"], int(data["size"]), bytes.fromhex(data["root"]))

    def observe(self, note: str, consistency_proof: Sequence[bytes] = ()) -> Checkpoint:
        """Verify a new signed checkpoint against the remembered one and remember it.
        `consistency_proof` proves the remembered size extends to the new size
        (GET /v1/audit/proof/consistency)."""
        new, old = self.verify(note)
        if old is not None:
            if new.size < old.size:
                raise SplitViewError(f"the log shrank from {old.size} to {new.size} entries")
            if not verify_consistency(
                old.size, new.size, old.root_hash, new.root_hash, consistency_proof
            ):
                raise SplitViewError(
                    f"the checkpoint of size {new.size} does not extend the remembered "
                    f"checkpoint of size {old.size}"
                )
        self._remember(new)
        return new

    def verify(self, note: str) -> tuple[Checkpoint, Checkpoint | None]:
        """The new checkpoint, its signature verified, and the remembered one (None
        the first time): a client asks for the consistency proof between the two
        sizes, then calls `observe`."""
        new = verify_checkpoint(
            note, name=self.origin, public_key=self.public_key, origin=self.origin
        )
        return new, self.latest()

    def _remember(self, checkpoint: Checkpoint) -> None:
        if self.state_file is None:
            self._memory = checkpoint
            return
        data = {
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root": checkpoint.root_hash.hex(),
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
        os.replace(tmp, self.state_file)
