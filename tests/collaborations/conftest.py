"""The referral kit (tests/referrals/conftest.py) for the agreement tests that deliver."""

from tests.referrals.conftest import kit

__all__ = ["kit"]
