"""Imports every model module so Base.metadata knows every table (Alembic, tests)."""

from service.audit import models as audit_models
from service.collaborations import models as collaborations_models
from service.consents import models as consents_models
from service.organizations import models as organizations_models
from service.subjects import models as subjects_models

__all__ = [
    "audit_models",
    "collaborations_models",
    "consents_models",
    "organizations_models",
    "subjects_models",
]
