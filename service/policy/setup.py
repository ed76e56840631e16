"""Load the policy set from `settings.policy_dir` at start-up.

The Cedar schema, every `*.cedar` file and the taxonomy (`categories.toml`) are
read and validated together, once; the Cedar policies are parsed once into the
engine. Any problem stops the service with a `PolicySetError` naming the file
and the problem (never a half-loaded policy set, SECURITY-TESTS H09).
"""

from __future__ import annotations

from service.policy.engine import CedarPolicyEngine
from service.policy.errors import PolicySetError
from service.policy.loader import load_policy_set
from service.policy.taxonomy import Taxonomy, load_taxonomy
from service.settings import Settings
from service.vocabulary import Vocabulary

__all__ = ["PolicySetError", "Taxonomy", "load_policies", "load_taxonomy"]


def load_policies(settings: Settings) -> tuple[CedarPolicyEngine, Vocabulary]:
    policy_set = load_policy_set(settings.policy_dir)
    engine = CedarPolicyEngine(policy_set)
    return engine, policy_set.taxonomy.vocabulary
