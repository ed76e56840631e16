"""The policy engine: Cedar policies in `policies/`, decided field by field.

Public surface for the rest of the service:

- `inputs`: the typed facts a decision is made on (`DecisionRequest` and its parts).
- `decisions`: what comes back (`Decision`, `FieldDecision`, `ReleasePermit`).
- `engine`: the `PolicyEngine` protocol and `CedarPolicyEngine`, its only implementation.
- `loader`: reading and validating the policy set on disk (`load_policy_set`).
- `org_rules`: an organization's own stricter rules (`forbid` statements only).
"""
