"""One error hierarchy for the whole product.

Every error the product raises on purpose derives from `EvidenceError`. The CLI maps the two families
that users act on to exit codes: `ConfigurationError` (and usage errors) to 2, `IntegrityError` to 1.
A bad input file is never an exception that drops data: it becomes a warning stored on its record.
"""

from __future__ import annotations


class EvidenceError(Exception):
    """Base of every error the product raises on purpose."""


class ConfigurationError(EvidenceError):
    """Settings, keys, or the data directory are unusable; the operator must fix them (exit 2)."""


class DatabaseUnavailableError(ConfigurationError):
    """The configured database cannot be reached or opened."""


class IntegrityError(EvidenceError):
    """Stored evidence is not what was recorded: altered bytes, a broken audit chain (exit 1)."""


class BlobNotFoundError(IntegrityError):
    """A blob that the records say exists is missing from the store."""


class BlobMismatchError(IntegrityError):
    """A blob's bytes no longer hash to the sha256 it is stored under."""


class StoreError(EvidenceError):
    """The blob store refused or failed an operation (full disk, permission, server error)."""


class BlobExistsError(StoreError):
    """An attempt to overwrite a stored blob; content-addressed blobs are written once."""


class ObjectLockedError(StoreError):
    """The store refused to delete or shorten the retention of a locked object (R10)."""


class NotFoundError(EvidenceError):
    """A record asked for by id or key does not exist."""


class InputError(EvidenceError):
    """Input a user must correct: a bad argument, query or file (exit 2 on the CLI, HTTP 400 on the web)."""


class NotPermittedError(EvidenceError):
    """The acting user's role, unit or the object's confidentiality does not allow this (R11, R13).

    The web answers 404 where the object's existence must not show, 403 otherwise."""


class StationNotTrustedError(NotPermittedError):
    """This station's key is not enrolled and approved, or is revoked: it may not write audit events,
    hence nothing at all, to a store shared by several stations (issue 18; exit 2 on the CLI)."""


class ConflictError(EvidenceError):
    """The request is well formed but the record's present state does not allow it (HTTP 409)."""


class TransientError(EvidenceError):
    """A failure that may succeed when retried (network, busy database)."""


class PermanentError(EvidenceError):
    """A failure that will not go away by retrying (a corrupt file); never retried."""
