from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from paymux_wechat import signing
from paymux_wechat.keys import SandboxKeys, ensure_keys
from wechatpayv3.utils import aes_decrypt, rsa_decrypt

from paymux.channels.base import InvalidSignature


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SandboxKeys:
    return ensure_keys(tmp_path_factory.mktemp("wechat-signing-keys"))


@pytest.fixture(scope="module")
def merchant(keys: SandboxKeys) -> tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey]:
    return (
        signing.load_private_key(keys.merchant_private_key_file),
        signing.load_public_key(keys.merchant_public_key_file),
    )


@pytest.fixture(scope="module")
def platform(keys: SandboxKeys) -> tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey]:
    return (
        signing.load_private_key(keys.platform_private_key_file),
        signing.load_public_key(keys.platform_public_key_file),
    )


def test_keys_are_idempotent_and_private(keys: SandboxKeys) -> None:
    again = ensure_keys(keys.data_dir)
    assert again == keys
    assert len(keys.merchant_serial_no) == 40
    int(keys.merchant_serial_no, 16)
    assert keys.platform_public_key_id.startswith("PUB_KEY_ID_0119")
    apiv3 = keys.read_apiv3_key()
    assert len(apiv3) == 32 and apiv3.isalnum()
    for private in (keys.merchant_private_key_file, keys.apiv3_key_file):
        assert private.stat().st_mode & 0o777 == 0o600
    assert keys.merchant_private_key_file.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert (keys.data_dir / "mchid.txt").read_text().strip() == "1900000109"
    assert (keys.data_dir / "appid.txt").read_text().strip() == "wxd678efh567hg6787"
    assert apiv3 not in repr(keys)


def test_request_sign_verify_round_trip(
    merchant: tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey],
) -> None:
    private, public = merchant
    body = b'{"a": 1,  "b":"\xe4\xb8\xad"}'
    header = signing.build_authorization(
        mchid="1900000109",
        serial_no="ABC",
        private_key=private,
        method="POST",
        path="/v3/x?y=1",
        body=body,
    )
    assert header.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="')
    auth = signing.parse_authorization(header)
    assert auth.mchid == "1900000109" and auth.serial_no == "ABC"
    assert signing.verify_request(public, method="POST", path="/v3/x?y=1", body=body, auth=auth)
    # Any change to the exact bytes, the path or the method breaks it.
    assert not signing.verify_request(
        public, method="POST", path="/v3/x?y=1", body=b'{"a":1,"b":"\xe4\xb8\xad"}', auth=auth
    )
    assert not signing.verify_request(public, method="POST", path="/v3/x", body=body, auth=auth)
    assert not signing.verify_request(public, method="PUT", path="/v3/x?y=1", body=body, auth=auth)


def test_request_message_layout() -> None:
    message = signing.request_message("get", "/v3/p", "1554208460", "593BEC0C", b"")
    assert message == b"GET\n/v3/p\n1554208460\n593BEC0C\n\n"


@pytest.mark.parametrize("header", ["Bearer x", 'WECHATPAY2-SHA256-RSA2048 mchid="1"', ""])
def test_parse_authorization_rejects(header: str) -> None:
    with pytest.raises(ValueError):
        signing.parse_authorization(header)


def _signed(
    platform: tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey],
    keys: SandboxKeys,
    body: bytes,
    **kwargs: str,
) -> dict[str, str]:
    return signing.signature_headers(
        platform[0], serial=keys.platform_public_key_id, body=body, **kwargs
    )


def test_response_verification(
    platform: tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey], keys: SandboxKeys
) -> None:
    body = b'{"state":"SUCCESS"}'
    headers = _signed(platform, keys, body)
    signing.verify_platform_signature(
        headers, body, public_key=platform[1], public_key_id=keys.platform_public_key_id
    )
    lowered = {k.lower(): v for k, v in headers.items()}
    signing.verify_platform_signature(
        lowered, body, public_key=platform[1], public_key_id=keys.platform_public_key_id
    )


def test_response_verification_fails_on_tampered_body(
    platform: tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey], keys: SandboxKeys
) -> None:
    headers = _signed(platform, keys, b'{"state":"FAIL"}')
    with pytest.raises(InvalidSignature, match="does not verify"):
        signing.verify_platform_signature(
            headers,
            b'{"state":"SUCCESS"}',
            public_key=platform[1],
            public_key_id=keys.platform_public_key_id,
        )


def test_response_verification_fails_on_wrong_serial(
    platform: tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey], keys: SandboxKeys
) -> None:
    body = b"{}"
    headers = signing.signature_headers(platform[0], serial="PUB_KEY_ID_OTHER", body=body)
    with pytest.raises(InvalidSignature, match="Serial"):
        signing.verify_platform_signature(
            headers, body, public_key=platform[1], public_key_id=keys.platform_public_key_id
        )


@pytest.mark.parametrize("offset", [-301, 301])
def test_response_verification_fails_on_stale_timestamp(
    platform: tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey], keys: SandboxKeys, offset: int
) -> None:
    body = b"{}"
    headers = _signed(platform, keys, body, timestamp=str(int(time.time()) + offset))
    with pytest.raises(InvalidSignature, match="Timestamp"):
        signing.verify_platform_signature(
            headers, body, public_key=platform[1], public_key_id=keys.platform_public_key_id
        )


def test_response_verification_fails_without_headers(
    platform: tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey], keys: SandboxKeys
) -> None:
    with pytest.raises(InvalidSignature, match="missing"):
        signing.verify_platform_signature(
            {}, b"{}", public_key=platform[1], public_key_id=keys.platform_public_key_id
        )


def test_response_signed_by_another_key_fails(
    merchant: tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey],
    platform: tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey],
    keys: SandboxKeys,
) -> None:
    body = b"{}"
    headers = signing.signature_headers(merchant[0], serial=keys.platform_public_key_id, body=body)
    with pytest.raises(InvalidSignature):
        signing.verify_platform_signature(
            headers, body, public_key=platform[1], public_key_id=keys.platform_public_key_id
        )


APIV3 = "0123456789abcdefghijABCDEFGHIJ01"


def test_aes_gcm_round_trip() -> None:
    plaintext = b'{"out_bill_no":"PMX1","state":"SUCCESS"}'
    sealed = signing.aead_encrypt(
        APIV3, nonce="abcdefghijkl", associated_data="mch_payment", plaintext=plaintext
    )
    opened = signing.aead_decrypt(
        APIV3, nonce="abcdefghijkl", associated_data="mch_payment", ciphertext=sealed
    )
    assert opened == plaintext


def test_aes_gcm_wrong_key_or_tamper_fails() -> None:
    sealed = signing.aead_encrypt(APIV3, nonce="abcdefghijkl", associated_data="ad", plaintext=b"x")
    with pytest.raises(InvalidSignature):
        signing.aead_decrypt(
            "Z" * 32, nonce="abcdefghijkl", associated_data="ad", ciphertext=sealed
        )
    with pytest.raises(InvalidSignature):
        signing.aead_decrypt(
            APIV3, nonce="abcdefghijkl", associated_data="other", ciphertext=sealed
        )
    with pytest.raises(InvalidSignature):
        signing.aead_decrypt(APIV3, nonce="abcdefghijkl", associated_data="ad", ciphertext="!!")


def test_aes_gcm_matches_wechat_sdk_helper() -> None:
    sealed = signing.aead_encrypt(
        APIV3, nonce="abcdefghijkl", associated_data="mch_payment", plaintext="中文".encode()
    )
    assert (
        aes_decrypt(
            nonce="abcdefghijkl", ciphertext=sealed, associated_data="mch_payment", apiv3_key=APIV3
        )
        == "中文"
    )


def test_oaep_round_trip(platform: tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey]) -> None:
    ciphertext = signing.oaep_encrypt(platform[1], "张三")
    assert "张三" not in ciphertext
    assert signing.oaep_decrypt(platform[0], ciphertext) == "张三"
    # The SDK's decrypt helper (what WeChat does server-side) agrees.
    assert rsa_decrypt(ciphertext=ciphertext, private_key=platform[0]) == "张三"


def test_oaep_wrong_key_fails(merchant: tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey]) -> None:
    other_ciphertext = signing.oaep_encrypt(merchant[1], "张三")
    other_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(ValueError):
        signing.oaep_decrypt(other_private, other_ciphertext)


def test_load_key_from_text(keys: SandboxKeys, tmp_path: Path) -> None:
    pem = keys.platform_public_key_file.read_text()
    assert signing.load_public_key(pem).key_size == 2048
    with pytest.raises(ValueError):
        signing.load_private_key(keys.platform_public_key_file)
