"""Encryption of store credentials at rest, with the key of WOOSYNC_SECRET_KEY.

One `CredentialsCipher` per process, built from the settings (`Settings.credentials_cipher`) and
passed to the store repository (shared/repository/stores.py), which decides what is stored.
The cipher is a MultiFernet over a list of keys, newest first: encryption uses the first key and
decryption tries each, so rotating the key later only means handing it the new key followed by
the old ones (and re-encrypting stored credentials at leisure with `MultiFernet.rotate`).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class WrongCredentialsKey(Exception):
    """The credentials were encrypted with a key this cipher does not hold."""


class CredentialsCipher:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("a credentials cipher needs at least one key")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def encrypt(self, document: bytes) -> str:
        """The credentials document as a Fernet token, with the newest key."""
        return self._fernet.encrypt(document).decode()

    def decrypt(self, token: str) -> bytes:
        """The credentials document of a token; WrongCredentialsKey when no key of the cipher opens it."""
        try:
            return self._fernet.decrypt(token.encode())
        except InvalidToken:
            raise WrongCredentialsKey("the credentials were encrypted with another key") from None

    def __repr__(self) -> str:
        return "CredentialsCipher(keys=**********)"
