"""Sectors of organizations (DESIGN.md section 3). A principal's sector always
comes from its organization's record, never from its token."""

from __future__ import annotations

from enum import StrEnum


class Sector(StrEnum):
    victim_services = "victim_services"
    shelter = "shelter"
    law_enforcement = "law_enforcement"
    prosecution = "prosecution"
    legal_services = "legal_services"
    healthcare = "healthcare"
    child_welfare = "child_welfare"
    government = "government"
    advocacy = "advocacy"
    faith_based = "faith_based"
    research = "research"
    oversight = "oversight"
