"""Pure security primitives: secrets at rest, API tokens, the audit hash chain and log redaction.

Nothing here does I/O beyond reading or creating the key file, so the daemon and the API wire these
together and the rules themselves are tested with plain pytest.
"""
