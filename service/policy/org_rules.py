"""An organization's own stricter rules (PUT /v1/organizations/{id}/policy).

Cedar text, validated against the same schema as the shared set, accepted only
if every statement is a `forbid`: an organization can forbid more, never permit
more (DESIGN.md section 5, STYLE.md convention 8). Each statement needs `@id` and
`@reason` like the shared policies, so every withheld field can say why. The
rules apply to decisions where the organization is the sender, holder or
recipient; their ids are namespaced `org/<org id>/<id>` in decisions.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from service.errors import ProblemItem
from service.policy.decisions import OrgRulesVersion
from service.policy.errors import OrgRulesRejectedError
from service.policy.loader import LoadedPolicySet, PolicyMeta, PolicyTextError, parse_cedar_text

MAX_RULES_CHARS: Final = 64 * 1024
MAX_RULES: Final = 200


@dataclass(frozen=True)
class OrgRules:
    org_id: uuid.UUID
    version: int
    sha256: str
    est: Mapping[str, Any]
    meta: Mapping[str, PolicyMeta]

    @property
    def ref(self) -> OrgRulesVersion:
        return OrgRulesVersion(org_id=self.org_id, version=self.version, sha256=self.sha256)


def rules_sha256(cedar_text: str) -> str:
    return hashlib.sha256(cedar_text.encode("utf-8")).hexdigest()


def compile_org_rules(
    policy_set: LoadedPolicySet, *, org_id: uuid.UUID, version: int, cedar_text: str
) -> OrgRules:
    """Validate an organization's rules; raise OrgRulesRejectedError (422) saying why."""
    path = "/cedar"
    if len(cedar_text) > MAX_RULES_CHARS:
        raise OrgRulesRejectedError(
            [ProblemItem(path, f"the rules exceed {MAX_RULES_CHARS} characters")]
        )
    source = f"org/{org_id}/v{version}"
    try:
        parsed = parse_cedar_text(cedar_text, policy_set.schema, source)
    except PolicyTextError as exc:
        raise OrgRulesRejectedError(
            [ProblemItem(path, f"{pid}: {msg}" if pid else msg) for pid, msg in exc.problems]
        ) from exc
    problems = [
        ProblemItem(
            path,
            f"{pid}: only forbid statements are accepted; an organization's rules can "
            "forbid more than the shared policy, never permit more",
        )
        for pid, (_, meta) in parsed.items()
        if meta.effect != "forbid"
    ]
    if len(parsed) > MAX_RULES:
        problems.append(ProblemItem(path, f"at most {MAX_RULES} statements"))
    if problems:
        raise OrgRulesRejectedError(problems)
    est: dict[str, Any] = {}
    meta: dict[str, PolicyMeta] = {}
    for pid, (policy, info) in parsed.items():
        namespaced = f"org/{org_id}/{pid}"
        est[namespaced] = policy
        meta[namespaced] = PolicyMeta(
            id=namespaced,
            reason=info.reason,
            source=source,
            effect=info.effect,
            obligations=(),
            reads_field=info.reads_field,
        )
    return OrgRules(
        org_id=org_id, version=version, sha256=rules_sha256(cedar_text), est=est, meta=meta
    )
