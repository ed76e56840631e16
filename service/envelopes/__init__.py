"""Envelopes on the server: structure, canonical bytes, signatures. Never decrypts.

The canonical encoding and the structural rules are the client library's pure
modules (accord_client.envelope_format, accord_client.envelope_parse), imported
here so client and server cannot drift. Signatures and base64 go through
service/crypto.py. Specification: docs/envelope.md.

What a sending endpoint calls (the router parses the raw body with
`accord_client.strict_json.loads_strict`, so duplicate keys never reach pydantic):

    envelope = verify.parse_envelope(body["envelope"])           # 422/400, every path
    verify.verify_submission(envelope, sender_org=..., ...)      # 422 on any mismatch
    envelope_id = format.envelope_id(envelope)                   # refuse a second time
    envelope.manifest()                                          # per-field audit facts

and at delivery, after the policy engine decided each field:

    format.build_delivery(header=..., signature=..., released=[...],
                          withheld=[format.WithheldField(entry=..., reasons=..., policies=...)],
                          disclosure_seq=...)
"""
