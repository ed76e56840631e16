"""Accord: the server. Survivor data reaches it only as ciphertext."""
