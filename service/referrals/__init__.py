"""Referrals: a sealed envelope from one organization to another, decided at release."""
