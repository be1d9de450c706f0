"""The evidence store: the system of record for body-worn camera footage.

`evidence_store.domain` is the pure core (plain dataclasses and rules, no I/O); the rest are adapters
(database, blob stores, keys, CLI) wired together in `evidence_store.bootstrap`.
"""
