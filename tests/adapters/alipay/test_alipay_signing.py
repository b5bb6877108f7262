from __future__ import annotations

import base64
import json
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from paymux_alipay.keys import SandboxKeys, ensure_keys
from paymux_alipay.signing import (
    KeyFormatError,
    load_private_key,
    load_private_key_file,
    load_public_key,
    load_public_key_file,
    response_node_text,
    rsa2_sign,
    sign_content,
    sign_notification,
    sign_params,
    verify_notification,
    verify_params,
    verify_response,
)


def test_sign_content_drops_sign_and_empty_values_and_sorts() -> None:
    params = {"b": "2", "a": "1", "sign": "xyz", "empty": "", "c": "x=y&z"}
    assert sign_content(params) == "a=1&b=2&c=x=y&z"
    assert sign_content({"sign_type": "RSA2", "x": "1"}, ("sign", "sign_type")) == "x=1"


def test_request_sign_round_trip_and_tamper(alipay_keys: SandboxKeys) -> None:
    private = load_private_key_file(alipay_keys.app_private_key)
    public = load_public_key_file(alipay_keys.app_public_key)
    params = {
        "app_id": alipay_keys.app_id,
        "method": "alipay.fund.trans.uni.transfer",
        "sign_type": "RSA2",
        "biz_content": json.dumps({"out_biz_no": "T1", "trans_amount": "1.00"}),
    }
    params["sign"] = sign_params(params, private)
    assert verify_params(params, public)
    assert not verify_params(
        {**params, "biz_content": params["biz_content"].replace("1.00", "9.00")}, public
    )
    assert not verify_params({**params, "sign_type": "RSA"}, public)  # sign_type is signed
    assert not verify_params({**params, "sign": "not base64 !!"}, public)
    assert not verify_params({k: v for k, v in params.items() if k != "sign"}, public)
    # signed with the wrong key
    other = load_public_key_file(alipay_keys.alipay_public_key)
    assert not verify_params(params, other)


def test_notification_signature_ignores_sign_type(alipay_keys: SandboxKeys) -> None:
    private = load_private_key_file(alipay_keys.alipay_private_key)
    public = load_public_key_file(alipay_keys.alipay_public_key)
    form = {
        "notify_id": "n1",
        "msg_method": "alipay.fund.trans.order.changed",
        "biz_content": '{"status":"SUCCESS"}',
        "sign_type": "RSA2",
    }
    form["sign"] = sign_notification(form, private)
    assert verify_notification(form, public)
    assert verify_notification({**form, "sign_type": "whatever"}, public)
    assert not verify_notification({**form, "biz_content": '{"status":"FAIL"}'}, public)


def test_response_verification_uses_the_exact_node_text(alipay_keys: SandboxKeys) -> None:
    private = load_private_key_file(alipay_keys.alipay_private_key)
    public = load_public_key_file(alipay_keys.alipay_public_key)
    # Odd spacing, escapes and braces inside strings: the node must be taken verbatim.
    node = '{ "code":"10000", "msg" : "Success", "note":"a}b{\\"c\\"", "status":"SUCCESS" }'
    sign = rsa2_sign(node, private)
    body = f'{{"alipay_fund_trans_uni_transfer_response" : {node} , "sign":"{sign}"}}'
    name = "alipay_fund_trans_uni_transfer_response"
    assert response_node_text(body, name) == (node, sign)
    assert verify_response(body, name, public) == node
    tampered = body.replace('"SUCCESS"', '"FAIL"   ')
    assert verify_response(tampered, name, public) is None
    # a re-serialized node (different spacing) no longer verifies: we never re-encode
    compact = json.dumps(json.loads(node), separators=(",", ":"))
    assert verify_response(body.replace(node, compact), name, public) is None
    assert verify_response("<html>502</html>", name, public) is None
    assert verify_response('{"other_response":{}}', name, public) is None


def test_error_response_node_is_found(alipay_keys: SandboxKeys) -> None:
    private = load_private_key_file(alipay_keys.alipay_private_key)
    public = load_public_key_file(alipay_keys.alipay_public_key)
    node = '{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-method"}'
    body = f'{{"error_response":{node},"sign":"{rsa2_sign(node, private)}"}}'
    assert verify_response(body, "alipay_x_response", public) == node


def test_keys_load_from_bare_base64_body(alipay_keys: SandboxKeys) -> None:
    private = load_private_key_file(alipay_keys.app_private_key)
    der_private = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    der_pkcs1 = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der_public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for body in (der_private, der_pkcs1):
        loaded = load_private_key(base64.b64encode(body).decode())
        assert loaded.private_numbers() == private.private_numbers()
    loaded_public = load_public_key(base64.b64encode(der_public).decode())
    assert loaded_public.public_numbers() == private.public_key().public_numbers()
    with pytest.raises(KeyFormatError):
        load_private_key("not a key at all!")
    with pytest.raises(KeyFormatError):
        load_public_key("-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n")


def test_ensure_keys_is_idempotent_and_private_keys_are_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = ensure_keys(tmp_path / "k")
    contents = {p: p.read_bytes() for p in (first.app_private_key, first.alipay_public_key)}
    second = ensure_keys(tmp_path / "k")
    assert second == first
    assert {p: p.read_bytes() for p in contents} == contents
    for path in (first.app_private_key, first.alipay_private_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.app_id_file.read_text().strip() == first.app_id == "2021000000000001"
    assert ensure_keys(tmp_path / "k", "2021000000000099").app_id_file.read_text().strip() == (
        "2021000000000099"
    )
    # the two halves of each pair belong together
    app_private = load_private_key_file(first.app_private_key)
    app_public = load_public_key_file(first.app_public_key)
    assert app_private.public_key().public_numbers() == app_public.public_numbers()
