"""The OpenAPI document describes the API as it is (issue 11): security schemes, the
Idempotency-Key header, problem+json for every error, real success schemas, the enforced
constraints."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.store

PROBLEM = "application/problem+json"
IDEMPOTENT = {("/v1/transfers", "post"), ("/v1/merchants/{merchant_id}/topups", "post")}


@pytest.fixture(scope="module")
async def document(api: httpx.AsyncClient) -> dict[str, Any]:
    r = await api.get("/openapi.json")
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, item in doc["paths"].items() for m, op in item.items()]


async def test_security_schemes_and_every_v1_operation_says_which_key(
    document: dict[str, Any],
) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["merchantKey"] == {**schemes["merchantKey"], "type": "http", "scheme": "bearer"}
    assert schemes["adminKey"]["scheme"] == "bearer"
    for path, method, op in operations(document):
        if path.startswith("/v1/"):
            assert op.get("security"), (method, path)
            assert {"401", "403"} <= set(op["responses"]), (method, path)
    fee_rules = document["paths"]["/v1/fee_schedule/rules"]["post"]
    assert fee_rules["security"] == [{"adminKey": []}]
    create = document["paths"]["/v1/transfers"]["post"]
    assert create["security"] == [{"merchantKey": []}]


async def test_idempotency_key_is_documented_where_it_is_required(
    document: dict[str, Any],
) -> None:
    for path, method in IDEMPOTENT:
        params = document["paths"][path][method]["parameters"]
        header = next(p for p in params if p["name"] == "Idempotency-Key")
        assert header["in"] == "header" and header["required"] is True
        assert header["schema"]["maxLength"] == 255


async def test_every_error_is_a_problem_and_fastapis_422_is_gone(
    document: dict[str, Any],
) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, method, op in operations(document):
        for status, response in op["responses"].items():
            if int(status) >= 400:
                assert PROBLEM in response["content"], (method, path, status)
        assert "422" in op["responses"]
        if method in ("post", "patch") and "requestBody" in op:
            assert {"413", "415"} <= set(op["responses"]), (method, path)


async def test_no_empty_success_schema(document: dict[str, Any]) -> None:
    for path, method, op in operations(document):
        for status, response in op["responses"].items():
            if not status.startswith("2") or status == "204":
                continue
            for media, content in response["content"].items():
                assert content.get("schema") not in (None, {}), (method, path, status, media)


async def test_enforced_constraints_are_in_the_schema(document: dict[str, Any]) -> None:
    body = document["paths"]["/v1/transfers"]["post"]["requestBody"]["content"]
    schema = body["application/json"]["schema"]
    assert schema["properties"]["amount"]["maximum"] == 10**13
    account = schema["properties"]["payee"]["properties"]["account"]
    assert account["maxLength"] == 100 and "pattern" in account
    rule = document["paths"]["/v1/fee_schedule/rules"]["post"]["requestBody"]["content"]
    props = rule["application/json"]["schema"]["properties"]
    assert props["fixed"]["maximum"] == 10**13
    assert props["effective_at"]["anyOf"][0]["format"] == "date-time"
    params = document["paths"]["/v1/transfers"]["get"]["parameters"]
    created = next(p for p in params if p["name"] == "created_lt")
    assert "date-time" in str(created["schema"])
