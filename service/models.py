"""Imports every model module so Base.metadata knows every table (Alembic, tests)."""

from service.audit import models as audit_models
from service.collaborations import models as collaborations_models
from service.consents import models as consents_models
from service.events import models as events_models
from service.idempotency import models as idempotency_models
from service.organizations import models as organizations_models
from service.records_requests import models as records_requests_models
from service.referrals import models as referrals_models
from service.subjects import models as subjects_models

__all__ = [
    "audit_models",
    "collaborations_models",
    "consents_models",
    "events_models",
    "idempotency_models",
    "organizations_models",
    "records_requests_models",
    "referrals_models",
    "subjects_models",
]
