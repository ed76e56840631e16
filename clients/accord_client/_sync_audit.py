# Generated from accord_client/_async_audit.py by clients/tools/unasync.py: do not edit.
"""The audit log: entries, exports, Merkle proofs, and the signed checkpoint, which
a client given a `CheckpointWitness` checks against the last one it saw (DESIGN.md
guarantee 4: the members are each other's witnesses).

Twin modules: `_async_audit` (the one source) and `_sync_audit`, generated
from it by clients/tools/unasync.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any, Literal, cast

from accord_client._exceptions import UnprocessableError
from accord_client._http import Id
from accord_client._models import JSON, AuditPage
from accord_client._protocol import RequestSpec, query
from accord_client.checkpoint import Checkpoint
from accord_client.envelope_format import b64decode_strict
from accord_client.schemas import CheckpointRead, ConsistencyProofRead, InclusionProofRead
from accord_client.witness import CheckpointWitness, SplitViewError


class AuditMethods:
    """Audit entries, exports, proofs and witnessed checkpoints, for `AccordClient`."""

    witness: CheckpointWitness | None

    def request(self, spec: RequestSpec) -> Any:
        raise NotImplementedError  # the client's transport sends it

    def stream_to(self, spec: RequestSpec, out: IO[bytes]) -> int:
        raise NotImplementedError  # the client's transport streams it

    # -- checkpoints and proofs (every member) --------------------------------------------

    def get_audit_checkpoint(self) -> CheckpointRead:
        """The latest signed checkpoint. With a `witness`, the signed note is also
        verified and checked to extend the last checkpoint this client saw (by a
        consistency proof), then remembered: raises `SplitViewError` if the log was
        rewritten or forked, `CheckpointError` if the note does not verify."""
        checkpoint = cast(CheckpointRead, self.request(RequestSpec("GET", "/v1/audit/checkpoint")))
        if self.witness is not None:
            self.witness_checkpoint(checkpoint["note"])
        return checkpoint

    def witness_checkpoint(self, note: str | None = None) -> Checkpoint:
        """Check a signed checkpoint (the latest if `note` is None) with this client's
        witness and remember it; returns the verified checkpoint."""
        witness = self.witness
        if witness is None:
            raise ValueError("this client has no witness: pass witness=CheckpointWitness(...)")
        if note is None:
            body = self.request(RequestSpec("GET", "/v1/audit/checkpoint"))
            note = str(body["note"])
        new, old = witness.verify(note)
        proof: list[bytes] = []
        if old is not None and 0 < old.size < new.size:
            try:
                answer = self.get_consistency_proof(from_size=old.size, to_size=new.size)
            except UnprocessableError as exc:  # it signed a tree it cannot prove
                raise SplitViewError(
                    f"the service signed a checkpoint of size {new.size} and cannot prove "
                    f"it extends the remembered checkpoint of size {old.size}"
                ) from exc
            proof = [b64decode_strict(item) for item in answer["proof"]]
        return witness.observe(note, proof)

    def get_consistency_proof(self, *, from_size: int, to_size: int) -> ConsistencyProofRead:
        """Proof that the tree of `to_size` entries extends the one of `from_size`."""
        params = query(from_size=from_size, to_size=to_size)
        spec = RequestSpec("GET", "/v1/audit/proof/consistency", params=params)
        return cast(ConsistencyProofRead, self.request(spec))

    def get_inclusion_proof(self, *, seq: int, tree_size: int) -> InclusionProofRead:
        """The Merkle audit path of entry `seq` in the tree of `tree_size` (auditors)."""
        params = query(seq=seq, tree_size=tree_size)
        spec = RequestSpec("GET", "/v1/audit/proof/inclusion", params=params)
        return cast(InclusionProofRead, self.request(spec))

    # -- entries and exports (auditors; the oversight sector sees all) -------------------

    def list_audit_entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        org: Id | None = None,
        subject: str | None = None,
        action: str | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> AuditPage:
        params = query(
            since=since, until=until, org=org, subject=subject, action=action,
            after_seq=after_seq, limit=limit,
        )  # fmt: skip
        body = self.request(RequestSpec("GET", "/v1/audit/entries", params=params))
        return AuditPage(items=list(body["items"]), next_after_seq=body.get("next_after_seq"))

    def iter_audit_entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        org: Id | None = None,
        subject: str | None = None,
        action: str | None = None,
        after_seq: int | None = None,
        page_size: int | None = None,
    ) -> Iterator[JSON]:
        while True:
            page = self.list_audit_entries(
                since=since,
                until=until,
                org=org,
                subject=subject,
                action=action,
                after_seq=after_seq,
                limit=page_size,
            )
            yield from page.items
            if page.next_after_seq is None:
                return
            after_seq = page.next_after_seq

    def export_audit(
        self,
        out: IO[bytes],
        *,
        format: Literal["jsonl", "csv"] = "jsonl",
        since: datetime | None = None,
        until: datetime | None = None,
        org: Id | None = None,
        subject: str | None = None,
        action: str | None = None,
    ) -> int:
        """Stream an export into `out` (a file opened "wb") and return its size in
        bytes; verify it offline with `accord-audit`. One attempt, never retried: each
        export is itself an audit entry."""
        params = query(
            format=format, since=since, until=until, org=org, subject=subject, action=action
        )
        return self.stream_to(RequestSpec("GET", "/v1/audit/export", params=params), out)
