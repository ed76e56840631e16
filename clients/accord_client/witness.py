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
from dataclasses import dataclass
from pathlib import Path

from accord_client.checkpoint import Checkpoint, CheckpointError, verify_checkpoint
from accord_client.merkle import verify_consistency


class SplitViewError(CheckpointError):
    """The new checkpoint does not extend the remembered one: the log was rewritten
    or forked. Keep both checkpoints: they are the evidence."""


@dataclass
class CheckpointWitness:
    """Remembers the latest verified checkpoint in a small JSON file."""

    state_file: Path
    origin: str
    public_key: bytes

    def latest(self) -> Checkpoint | None:
        if not self.state_file.exists():
            return None
        data = json.loads(self.state_file.read_text(encoding="utf-8"))
        return Checkpoint(data["origin"], int(data["size"]), bytes.fromhex(data["root"]))

    def observe(self, note: str, consistency_proof: Sequence[bytes] = ()) -> Checkpoint:
        """Verify a new signed checkpoint against the remembered one and remember it.
        `consistency_proof` proves the remembered size extends to the new size
        (GET /v1/audit/proof/consistency)."""
        new = verify_checkpoint(
            note, name=self.origin, public_key=self.public_key, origin=self.origin
        )
        old = self.latest()
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

    def _remember(self, checkpoint: Checkpoint) -> None:
        data = {
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root": checkpoint.root_hash.hex(),
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
        os.replace(tmp, self.state_file)
