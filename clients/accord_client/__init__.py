"""Accord client library: survivor data is encrypted and decrypted only here."""

__all__: list[str] = []
