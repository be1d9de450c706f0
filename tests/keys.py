"""Ed25519 test keys as the pure audit chain takes them: a verifier function per key."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def verify_with(key: Ed25519PrivateKey) -> Callable[[bytes, bytes], bool]:
    """The (message, signature) -> valid function of `key`'s public half."""

    def verify(message: bytes, signature: bytes) -> bool:
        try:
            key.public_key().verify(signature, message)
        except InvalidSignature:
            return False
        return True

    return verify
