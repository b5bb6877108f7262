"""Paymux's Standard Webhooks signatures, verified by the public `standardwebhooks` library."""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as LibraryVerificationError

from paymux.webhooks import signing
from paymux.webhooks.signing import WebhookVerificationError

msg_ids = st.from_regex(r"msg_[A-Za-z0-9_-]{1,40}", fullmatch=True)
# The library decodes the body as UTF-8 before signing, so bodies are UTF-8 text.
bodies = st.text(max_size=2000).map(str.encode)
skews = st.integers(min_value=-200, max_value=200)

SECRET_A = signing.generate_secret()
SECRET_B = signing.generate_secret()


def test_generated_secret_format() -> None:
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    assert 24 <= len(key) <= 32
    assert secret != signing.generate_secret()


def test_known_vector_from_the_reference_libraries() -> None:
    # Test vector used across the standard-webhooks reference libraries' own test suites.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


@settings(max_examples=60, deadline=None)
@given(msg_id=msg_ids, body=bodies, skew=skews)
def test_library_verifies_single_secret(msg_id: str, body: bytes, skew: int) -> None:
    timestamp = int(time.time()) + skew
    sent = signing.headers([SECRET_A], msg_id, timestamp, body)
    assert Webhook(SECRET_A).verify(body, sent, json_parse=False) is None
    assert sent["content-type"] == "application/json"
    assert len(sent["webhook-signature"].split(" ")) == 1


@settings(max_examples=60, deadline=None)
@given(msg_id=msg_ids, body=bodies, skew=skews)
def test_library_verifies_each_secret_alone_during_rotation(
    msg_id: str, body: bytes, skew: int
) -> None:
    timestamp = int(time.time()) + skew
    sent = signing.headers([SECRET_A, SECRET_B], msg_id, timestamp, body)
    assert len(sent["webhook-signature"].split(" ")) == 2
    Webhook(SECRET_A).verify(body, sent, json_parse=False)
    Webhook(SECRET_B).verify(body, sent, json_parse=False)
    signing.verify(SECRET_A, sent, body)
    signing.verify(SECRET_B, sent, body)
    with pytest.raises(LibraryVerificationError):
        Webhook(signing.generate_secret()).verify(body, sent, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        signing.verify(signing.generate_secret(), sent, body)


@settings(max_examples=40, deadline=None)
@given(msg_id=msg_ids, body=bodies, secrets=st.sampled_from([[SECRET_A], [SECRET_A, SECRET_B]]))
def test_tampering_fails_in_both_verifiers(msg_id: str, body: bytes, secrets: list[str]) -> None:
    timestamp = int(time.time())
    sent = signing.headers(secrets, msg_id, timestamp, body)
    tampered_cases = [
        (body + b" ", sent),
        (body, {**sent, "webhook-id": msg_id + "x"}),
        (body, {**sent, "webhook-timestamp": str(timestamp - 1)}),
    ]
    for tampered_body, tampered_headers in tampered_cases:
        for secret in secrets:
            with pytest.raises(LibraryVerificationError):
                Webhook(secret).verify(tampered_body, tampered_headers, json_parse=False)
            with pytest.raises(WebhookVerificationError):
                signing.verify(secret, tampered_headers, tampered_body)


def test_old_timestamp_rejected_by_library_and_by_us() -> None:
    body = b'{"type":"transfer.succeeded"}'
    old = int(time.time()) - 6 * 60
    sent = signing.headers([SECRET_A], "msg_old", old, body)
    with pytest.raises(LibraryVerificationError, match="too old"):
        Webhook(SECRET_A).verify(body, sent, json_parse=False)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        signing.verify(SECRET_A, sent, body)
    # The same message is fine for a verifier whose clock agrees with the timestamp.
    signing.verify(SECRET_A, sent, body, now=old + 10)


def test_verify_accepts_any_matching_entry_and_ignores_unknown_versions() -> None:
    body = b"{}"
    ts = 1_700_000_000
    good = signing.sign(SECRET_A, "msg_1", ts, body)
    header = f"v1a,AAAA v2,{good[3:]} garbage v1,not-base64!! {good}"
    sent = {"Webhook-Id": "msg_1", "Webhook-Timestamp": str(ts), "Webhook-Signature": header}
    signing.verify(SECRET_A, sent, body, now=ts)
    with pytest.raises(WebhookVerificationError):
        signing.verify(SECRET_A, {**sent, "Webhook-Signature": f"v2,{good[3:]}"}, body, now=ts)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_requires_every_header(missing: str) -> None:
    sent = signing.headers([SECRET_A], "msg_1", 1_700_000_000, b"{}")
    del sent[missing]
    with pytest.raises(WebhookVerificationError, match="missing"):
        signing.verify(SECRET_A, sent, b"{}", now=1_700_000_000)


def test_verify_rejects_non_integer_timestamp() -> None:
    sent = signing.headers([SECRET_A], "msg_1", 1_700_000_000, b"{}")
    sent["webhook-timestamp"] = "1700000000.5"
    with pytest.raises(WebhookVerificationError, match="integer"):
        signing.verify(SECRET_A, sent, b"{}", now=1_700_000_000)


def test_errors_never_contain_the_secret() -> None:
    sent = signing.headers([SECRET_A], "msg_1", 1_700_000_000, b"{}")
    with pytest.raises(WebhookVerificationError) as caught:
        signing.verify(SECRET_B, sent, b"{}", now=1_700_000_000)
    key_part = SECRET_B.removeprefix("whsec_")
    assert key_part not in str(caught.value)
    with pytest.raises(ValueError) as bad:
        signing.sign("whsec_not*base64", "msg_1", 1, b"")
    assert "not*base64" not in str(bad.value)


@pytest.mark.parametrize("msg_id", ["", "msg.1", "msg 1", "msg\r\n1"])
def test_sign_rejects_ids_that_break_the_signed_content(msg_id: str) -> None:
    with pytest.raises(ValueError):
        signing.sign(SECRET_A, msg_id, 1, b"{}")


def test_signature_header_needs_a_secret_list() -> None:
    with pytest.raises(ValueError):
        signing.signature_header([], "msg_1", 1, b"{}")
    with pytest.raises(TypeError):
        signing.signature_header(SECRET_A, "msg_1", 1, b"{}")
