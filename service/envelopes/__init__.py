"""Envelopes on the server: structure, canonical bytes, signatures. Never decrypts.

The canonical encoding and the structural rules are the client library's pure
modules (accord_client.envelope_format, accord_client.envelope_parse), imported
here so client and server cannot drift. Signatures and base64 go through
service/crypto.py. Specification: docs/envelope.md.
"""
