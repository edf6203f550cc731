"""Security primitives: secrets at rest, API tokens and principals, rate limits, TLS file checks, the audit
hash chain and log redaction.

No Ray, gRPC or database here: the daemon and the API wire these together, so the rules are tested with
plain pytest. The only I/O is reading key and certificate files and installing log filters.
"""
