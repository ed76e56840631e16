"""Stable operation ids (`<module>_<verb>`, e.g. `referrals_deliver`) and the errors
each operation can answer beyond those its dependencies imply.

Keyed by the endpoint function (its module and name), not by path, so a new path
for the same operation keeps its id. An endpoint missing here still gets an id of
the right form (`<domain>_<function name>`); tests/web/test_openapi_contract.py
checks that every id has the form, is unique, and that every /v1 operation is named
here. A generated client's method names come from these ids: renaming one is a
breaking change of the contract.

`DOMAIN_ERRORS` lists the statuses an operation's own rules can raise (404 for an
object that is missing or not visible, 409 for a state conflict, 422 for a rule
checked by the service rather than by the schema, 429 for a per-operation limit,
403 for a check the service makes beyond the role). The statuses that follow from
the operation's shape (authentication, roles, parameters, a body, the database)
are added by service/web/openapi.py.
"""

from __future__ import annotations

from typing import Final

OPERATION_IDS: Final[dict[str, str]] = {
    # operations
    "service.operations.router.healthz": "operations_healthz",
    "service.operations.router.readyz": "operations_readyz",
    "service.operations.router.metrics": "operations_metrics",
    # organizations
    "service.organizations.router.create_organization": "organizations_create",
    "service.organizations.router.put_confidentiality": "organizations_set_confidentiality",
    "service.organizations.router.list_organizations": "organizations_list",
    "service.organizations.router.get_organization": "organizations_get",
    "service.organizations.router.get_key_history": "organizations_list_keys",
    "service.organizations.router.put_keys": "organizations_put_keys",
    "service.organizations.router.put_availability": "organizations_set_availability",
    "service.organizations.router.put_org_policy": "organizations_set_policy",
    "service.organizations.principals_router.list_principals": "organizations_list_principals",
    "service.organizations.principals_router.deactivate_principal": (
        "organizations_deactivate_principal"
    ),
    "service.organizations.principals_router.reactivate_principal": (
        "organizations_reactivate_principal"
    ),
    "service.organizations.principals_router.revoke_token": "organizations_revoke_token",
    # collaborations
    "service.collaborations.router.create_collaboration": "collaborations_create",
    "service.collaborations.router.list_collaborations": "collaborations_list",
    "service.collaborations.router.get_collaboration": "collaborations_get",
    "service.collaborations.router.get_agreement_history": "collaborations_list_agreements",
    "service.collaborations.router.amend_agreement": "collaborations_amend_agreement",
    "service.collaborations.router.sign_agreement": "collaborations_sign_agreement",
    "service.collaborations.router.withdraw_signature": "collaborations_withdraw_signature",
    "service.collaborations.router.add_member": "collaborations_add_member",
    "service.collaborations.router.remove_member": "collaborations_remove_member",
    # reports
    "service.reports.router.collaboration_report": "reports_get",
    # subjects and access links
    "service.subjects.router.create_subject": "subjects_create",
    "service.subjects.router.get_subject": "subjects_get",
    "service.subjects.router.get_disclosures": "subjects_list_disclosures",
    "service.subjects.router.erase_subject": "subjects_erase",
    "service.subjects.router.create_access_link": "subjects_create_access_link",
    "service.subjects.router.revoke_access_link": "subjects_revoke_access_link",
    "service.subjects.router.list_access_link_refusals": "subjects_list_access_link_refusals",
    # the survivor's pages (HTML)
    "service.pages.router.consents_page": "pages_consents",
    "service.pages.router.disclosures_page": "pages_disclosures",
    "service.pages.router.help_page": "pages_help",
    "service.pages.router.receipt_download": "pages_download_receipt",
    "service.pages.router.withdraw_ask": "pages_withdraw_ask",
    "service.pages.router.withdraw_confirm": "pages_withdraw_confirm",
    "service.pages.router.withdrawn_page": "pages_withdrawn",
    "service.pages.router.open_link": "pages_open_link",
    # policies
    "service.policy.router.get_policies": "policies_get",
    "service.disclosures.router.explain": "policies_explain",
    # audit
    "service.audit.router.get_checkpoint": "audit_get_checkpoint",
    "service.audit.router.get_inclusion_proof": "audit_prove_inclusion",
    "service.audit.router.get_consistency_proof": "audit_prove_consistency",
    "service.audit.router.get_entries": "audit_list_entries",
    "service.audit.router.export": "audit_export",
    # consents
    "service.consents.router.create_consent": "consents_create",
    "service.consents.router.list_consents": "consents_list",
    "service.consents.router.get_consent": "consents_get",
    "service.consents.router.revoke_consent": "consents_revoke",
    "service.consents.router.get_receipt": "consents_get_receipt",
    "service.consents.router.get_fhir": "consents_get_fhir",
    "service.consents.router.list_needing_review": "consents_list_reviews",
    "service.consents.router.record_alleged_abuser": "consents_record_alleged_abuser",
    # referrals
    "service.referrals.router.create_referral": "referrals_create",
    "service.referrals.router.list_referrals": "referrals_list",
    "service.referrals.router.get_referral": "referrals_get",
    "service.referrals.router.deliver_referral": "referrals_deliver",
    "service.referrals.router.accept_referral": "referrals_accept",
    "service.referrals.router.decline_referral": "referrals_decline",
    "service.referrals.router.close_referral": "referrals_close",
    "service.referrals.router.withdraw_referral": "referrals_withdraw",
    # records requests, obligations, reviews
    "service.records_requests.router.create_records_request": "records_requests_create",
    "service.records_requests.router.list_records_requests": "records_requests_list",
    "service.records_requests.router.get_records_request": "records_requests_get",
    "service.records_requests.router.respond_to_records_request": "records_requests_respond",
    "service.records_requests.router.deliver_records_request": "records_requests_deliver",
    "service.records_requests.router.suspend_accounting": "records_requests_suspend_accounting",
    "service.records_requests.router.list_obligations": "records_requests_list_obligations",
    "service.records_requests.router.obligation_done": "records_requests_complete_obligation",
    "service.records_requests.router.list_reviews": "records_requests_list_reviews",
    "service.records_requests.router.close_review": "records_requests_close_review",
    # events and webhooks
    "service.events.router.list_events": "events_list",
    "service.events.webhooks_router.create_webhook": "webhooks_create",
    "service.events.webhooks_router.list_webhooks": "webhooks_list",
    "service.events.webhooks_router.get_webhook": "webhooks_get",
    "service.events.webhooks_router.update_webhook": "webhooks_update",
    "service.events.webhooks_router.delete_webhook": "webhooks_delete",
    "service.events.webhooks_router.rotate_webhook_secret": "webhooks_rotate_secret",
    "service.events.webhooks_router.list_deliveries": "webhooks_list_deliveries",
    "service.events.webhooks_router.redeliver": "webhooks_redeliver",
    "service.events.webhooks_router.test_webhook": "webhooks_test",
    "service.events.webhooks_router.webhook_signing_key": "webhooks_get_signing_key",
}

_DENY, _NF, _CONFLICT = 403, 404, 409

DOMAIN_ERRORS: Final[dict[str, tuple[int, ...]]] = {
    "operations_readyz": (503,),
    "organizations_get": (_NF,),
    "organizations_list_keys": (_NF,),
    "organizations_put_keys": (
        _DENY,
        _NF,
    ),
    "organizations_set_availability": (
        _DENY,
        _NF,
    ),
    "organizations_set_policy": (
        _DENY,
        _NF,
    ),
    "organizations_set_confidentiality": (
        _DENY,
        _NF,
    ),
    "collaborations_create": (_NF,),
    "collaborations_get": (_NF,),
    "collaborations_list_agreements": (_NF,),
    "collaborations_amend_agreement": (_NF, _CONFLICT),
    "collaborations_sign_agreement": (_DENY, _NF, _CONFLICT),
    "collaborations_withdraw_signature": (_DENY, _NF, _CONFLICT),
    "collaborations_add_member": (_NF, _CONFLICT),
    "collaborations_remove_member": (_NF, _CONFLICT),
    "reports_get": (_NF,),
    "subjects_get": (_NF,),
    "subjects_list_disclosures": (_NF,),
    "subjects_erase": (_NF,),
    "subjects_create_access_link": (_NF, _CONFLICT),
    "subjects_revoke_access_link": (_NF,),
    "subjects_list_access_link_refusals": (_NF,),
    "audit_prove_inclusion": (_NF,),
    "audit_prove_consistency": (_NF,),
    "audit_export": (429,),
    "consents_create": (_NF, _CONFLICT),
    "consents_list": (_NF,),
    "consents_get": (_NF,),
    "consents_revoke": (_NF, _CONFLICT),
    "consents_get_receipt": (_NF,),
    "consents_get_fhir": (_NF,),
    "consents_record_alleged_abuser": (_NF,),
    "referrals_create": (_NF, _CONFLICT),
    "referrals_get": (_NF,),
    "referrals_deliver": (_DENY, _NF, _CONFLICT),
    "referrals_accept": (_DENY, _NF, _CONFLICT),
    "referrals_decline": (_DENY, _NF, _CONFLICT),
    "referrals_close": (_DENY, _NF, _CONFLICT),
    "referrals_withdraw": (_DENY, _NF, _CONFLICT),
    "records_requests_create": (_NF,),
    "records_requests_get": (_NF,),
    "records_requests_respond": (_DENY, _NF, _CONFLICT),
    "records_requests_deliver": (_DENY, _NF, _CONFLICT),
    "records_requests_suspend_accounting": (_DENY, _NF, _CONFLICT),
    "records_requests_complete_obligation": (_DENY, _NF, _CONFLICT),
    "records_requests_close_review": (_DENY, _NF, _CONFLICT),
    "webhooks_create": (
        _DENY,
        _NF,
    ),
    "webhooks_list": (
        _DENY,
        _NF,
    ),
    "webhooks_get": (
        _DENY,
        _NF,
    ),
    "webhooks_update": (
        _DENY,
        _NF,
    ),
    "webhooks_delete": (
        _DENY,
        _NF,
    ),
    "webhooks_rotate_secret": (
        _DENY,
        _NF,
    ),
    "webhooks_list_deliveries": (
        _DENY,
        _NF,
    ),
    "webhooks_redeliver": (_DENY, _NF, _CONFLICT),
    "webhooks_test": (
        _DENY,
        _NF,
    ),
    "records_requests_list_obligations": (_DENY,),
    "records_requests_list_reviews": (_DENY,),
    "organizations_list_principals": (_DENY, _NF),
    "organizations_deactivate_principal": (_DENY, _NF),
    "organizations_reactivate_principal": (_DENY, _NF),
    "organizations_revoke_token": (_DENY, _NF),
}


def operation_id(module: str, name: str) -> str:
    explicit = OPERATION_IDS.get(f"{module}.{name}")
    if explicit is not None:
        return explicit
    domain = module.removeprefix("service.").split(".")[0]
    return f"{domain}_{name}"
