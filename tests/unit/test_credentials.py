"""shared.credentials: the cipher of store credentials at rest, and its one construction from
the settings (WOOSYNC_SECRET_KEY, docs/contract.md section 2)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from shared.credentials import CredentialsCipher, WrongCredentialsKey
from shared.settings import load_settings

pytestmark = pytest.mark.unit

DOCUMENT = b'{"consumer_key":"ck_1","consumer_secret":"cs_1"}'


def a_key() -> str:
    return Fernet.generate_key().decode()


def test_what_the_cipher_encrypts_it_decrypts_and_the_token_hides_the_document() -> None:
    cipher = CredentialsCipher([a_key()])
    token = cipher.encrypt(DOCUMENT)
    assert "ck_1" not in token and "cs_1" not in token
    assert cipher.decrypt(token) == DOCUMENT


def test_a_token_of_another_key_is_refused_by_name() -> None:
    with pytest.raises(WrongCredentialsKey):
        CredentialsCipher([a_key()]).decrypt(CredentialsCipher([a_key()]).encrypt(DOCUMENT))


def test_with_several_keys_the_first_encrypts_and_every_one_decrypts() -> None:
    old, new = a_key(), a_key()
    rotated = CredentialsCipher([new, old])
    assert rotated.decrypt(CredentialsCipher([old]).encrypt(DOCUMENT)) == DOCUMENT
    assert CredentialsCipher([new]).decrypt(rotated.encrypt(DOCUMENT)) == DOCUMENT


def test_a_cipher_needs_a_key_and_never_shows_it() -> None:
    with pytest.raises(ValueError):
        CredentialsCipher([])
    key = a_key()
    assert key not in repr(CredentialsCipher([key]))


def test_the_settings_build_one_cipher_from_the_secret_key_and_none_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WOOSYNC_SECRET_KEY", raising=False)
    key = a_key()
    settings = load_settings(secret_key=key)
    cipher = settings.credentials_cipher
    assert cipher is settings.credentials_cipher  # built once
    assert CredentialsCipher([key]).decrypt(cipher.encrypt(DOCUMENT)) == DOCUMENT
    assert load_settings(secret_key="").credentials_cipher is None
    assert "credentials_cipher" not in settings.masked()
