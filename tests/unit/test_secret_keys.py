"""WOOSYNC_SECRET_KEY as a list of keys, newest first (docs/contract.md section 2), the cipher's
rotation of a token to the newest key, and the service's own broker user (WOOSYNC_AMQP_URL)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from shared.credentials import CredentialsCipher, WrongCredentialsKey
from shared.settings import SettingsError, amqp_user_of, load_settings

pytestmark = pytest.mark.unit

DOCUMENT = b'{"consumer_key":"ck_1","consumer_secret":"cs_1"}'


def a_key() -> str:
    return Fernet.generate_key().decode()


def test_several_keys_newest_first_make_a_cipher_that_writes_with_the_first_and_reads_with_all() -> None:
    new, old = a_key(), a_key()
    settings = load_settings(secret_key=f"{new}, {old}")
    assert settings.secret_keys == (new, old)
    cipher = settings.credentials_cipher
    assert cipher.decrypt(CredentialsCipher([old]).encrypt(DOCUMENT)) == DOCUMENT
    assert CredentialsCipher([new]).decrypt(cipher.encrypt(DOCUMENT)) == DOCUMENT


@pytest.mark.parametrize("value, position", [("{good},nope", "key 2 of 2"), ("nope,{good}", "key 1 of 2"),
                                             ("{good},,{good}", "key 2 of 3"), ("nope", "the key")])
def test_a_malformed_key_is_named_by_its_position_and_never_echoed(value: str, position: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(secret_key=value.format(good=a_key()))
    assert "WOOSYNC_SECRET_KEY" in str(refused.value) and position in str(refused.value)
    assert "nope" not in str(refused.value)


def test_rotate_leaves_a_token_of_the_newest_key_and_moves_an_older_one_to_it() -> None:
    new, old = a_key(), a_key()
    cipher = CredentialsCipher([new, old])
    assert cipher.rotate(CredentialsCipher([new]).encrypt(DOCUMENT)) is None
    rotated = cipher.rotate(CredentialsCipher([old]).encrypt(DOCUMENT))
    assert rotated is not None and CredentialsCipher([new]).decrypt(rotated) == DOCUMENT
    with pytest.raises(WrongCredentialsKey):
        cipher.rotate(CredentialsCipher([a_key()]).encrypt(DOCUMENT))


def test_the_service_user_is_the_user_of_the_amqp_url() -> None:
    assert amqp_user_of("amqp://woosync:secret@rabbit:5672/prod") == "woosync"
    assert amqp_user_of("amqps://crm%40acme:x@rabbit/") == "crm@acme"
    assert amqp_user_of("amqp://rabbit/") == "guest"  # the AMQP default
    assert load_settings(amqp_url="amqp://svc:pw@h/").amqp_user == "svc"
