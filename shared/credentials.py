"""Encryption of store credentials at rest, with the key of WOOSYNC_SECRET_KEY.

One `CredentialsCipher` per process, built from the settings (`Settings.credentials_cipher`) and
passed to the store repository (shared/repository/stores.py), which decides what is stored.
The cipher is a MultiFernet over a list of keys, newest first (WOOSYNC_SECRET_KEY="newest,older"):
encryption uses the first key and decryption tries each, so rotating the key means putting the
new key first, then re-encrypting what is stored (`woosync secrets reencrypt`, which calls
`rotate`) and finally dropping the old key (docs/contract.md sections 1 and 2).
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
        self._newest = Fernet(keys[0].encode())
        self._fernet = MultiFernet([self._newest, *(Fernet(key.encode()) for key in keys[1:])])

    def encrypt(self, document: bytes) -> str:
        """The credentials document as a Fernet token, with the newest key."""
        return self._fernet.encrypt(document).decode()

    def decrypt(self, token: str) -> bytes:
        """The credentials document of a token; WrongCredentialsKey when no key of the cipher opens it."""
        try:
            return self._fernet.decrypt(token.encode())
        except InvalidToken:
            raise WrongCredentialsKey("the credentials were encrypted with another key") from None

    def rotate(self, token: str) -> str | None:
        """The token re-encrypted with the newest key, or None when the newest key already
        encrypted it; WrongCredentialsKey when no key of the cipher opens it."""
        try:
            self._newest.decrypt(token.encode())
            return None
        except InvalidToken:
            pass
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise WrongCredentialsKey("the credentials were encrypted with another key") from None

    def __repr__(self) -> str:
        return "CredentialsCipher(keys=**********)"
