"""The referral kit (tests/referrals/conftest.py) for the door's tests that deliver
referrals; the records-request kit is made in the tests that need it."""

from tests.referrals.conftest import kit

__all__ = ["kit"]
