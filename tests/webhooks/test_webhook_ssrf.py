"""SSRF guard for merchant webhook URLs."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from paymux.webhooks.ssrf import UnresolvableHost, UnsafeURL, check_url, resolve_checked

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

DNS: dict[str, list[str]] = {
    "hooks.merchant.example": [PUBLIC_V4, PUBLIC_V6],
    "internal.merchant.example": ["10.1.2.3"],
    "mixed.merchant.example": [PUBLIC_V4, "127.0.0.1"],
    "metadata.merchant.example": ["169.254.169.254"],
    "cgnat.merchant.example": ["100.64.1.1"],
    "mapped.merchant.example": ["::ffff:192.168.1.1"],
    "nat64.merchant.example": ["64:ff9b::a00:1"],
    "ula.merchant.example": ["fd00::1"],
}


async def fake_resolver(host: str, port: int) -> Sequence[str]:
    if host not in DNS:
        raise OSError("Name or service not known")
    return DNS[host]


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"literal IPs must not hit DNS ({host})")


SAFE = [
    "https://hooks.merchant.example/webhooks",
    "https://hooks.merchant.example:8443/webhooks?x=1",
    f"https://{PUBLIC_V4}/hook",
    f"https://[{PUBLIC_V6}]:8443/hook",
]

UNSAFE = [
    ("http://hooks.merchant.example/webhooks", "https"),
    ("ftp://hooks.merchant.example/x", "scheme"),
    ("https://user:pw@hooks.merchant.example/x", "credentials"),
    ("https://user@hooks.merchant.example/x", "credentials"),
    ("https:///no-host", "no host"),
    ("https://127.0.0.1/hook", "loopback"),
    ("https://127.8.9.10/hook", "loopback"),
    ("https://10.0.0.5/hook", "private"),
    ("https://172.16.3.4/hook", "private"),
    ("https://192.168.1.1/hook", "private"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://100.64.0.1/hook", "not"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://224.0.0.1/hook", "multicast"),
    ("https://240.0.0.1/hook", "reserved"),
    ("https://[::1]/hook", "loopback"),
    ("https://[::]/hook", "unspecified"),
    ("https://[::ffff:127.0.0.1]/hook", "127.0.0.1"),
    ("https://[fe80::1]/hook", "link-local"),
    ("https://[fd12:3456::1]/hook", "private"),
    ("https://[2002:7f00:1::]/hook", "127.0.0.1"),  # 6to4 wrapping loopback
    ("https://2130706433/hook", "non-standard"),
    ("https://0x7f.1/hook", "non-standard"),
    ("https://127.1/hook", "non-standard"),
    ("https://internal.merchant.example/hook", "10.1.2.3"),
    ("https://mixed.merchant.example/hook", "127.0.0.1"),
    ("https://metadata.merchant.example/hook", "link-local"),
    ("https://cgnat.merchant.example/hook", "100.64.1.1"),
    ("https://mapped.merchant.example/hook", "192.168.1.1"),
    ("https://nat64.merchant.example/hook", "10.0.0.1"),
    ("https://ula.merchant.example/hook", "private"),
    ("https://hooks.merchant.example:0/x", "port"),
    ("https://hooks.merchant.example:99999/x", "port"),
    ("https://hooks.merchant.example/a b", "whitespace"),
]


@pytest.mark.parametrize("url", SAFE)
async def test_public_https_urls_pass(url: str) -> None:
    await check_url(url, allow_http=False, allow_private=False, resolver=fake_resolver)


@pytest.mark.parametrize(("url", "reason"), UNSAFE)
async def test_unsafe_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL) as caught:
        await check_url(url, allow_http=False, allow_private=False, resolver=fake_resolver)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1/", "https://[::1]:9/", "https://10.0.0.1/", "https://[fe80::1]/"]
)
async def test_literal_ips_are_checked_without_dns(url: str) -> None:
    with pytest.raises(UnsafeURL):
        await check_url(url, allow_http=False, allow_private=False, resolver=no_dns)
    await check_url(url, allow_http=False, allow_private=True, resolver=no_dns)


async def test_http_only_when_allowed() -> None:
    url = "http://hooks.merchant.example:8080/webhooks"
    with pytest.raises(UnsafeURL, match="https"):
        await check_url(url, allow_http=False, allow_private=False, resolver=fake_resolver)
    await check_url(url, allow_http=True, allow_private=False, resolver=fake_resolver)


async def test_private_allowed_when_configured() -> None:
    url = "https://internal.merchant.example/hook"
    await check_url(url, allow_http=False, allow_private=True, resolver=fake_resolver)
    # Credentials stay refused whatever the flags.
    with pytest.raises(UnsafeURL, match="credentials"):
        await check_url(
            "http://u:p@127.0.0.1/", allow_http=True, allow_private=True, resolver=fake_resolver
        )


async def test_unresolvable_host_is_its_own_kind_of_unsafe() -> None:
    with pytest.raises(UnresolvableHost):
        await check_url(
            "https://nowhere.merchant.example/",
            allow_http=False,
            allow_private=False,
            resolver=fake_resolver,
        )


async def test_resolve_checked_returns_the_approved_addresses() -> None:
    checked = await resolve_checked(
        "https://Hooks.Merchant.Example:8443/webhooks",
        allow_http=False,
        allow_private=False,
        resolver=fake_resolver,
    )
    assert checked.host == "hooks.merchant.example"
    assert checked.port == 8443
    assert [str(a) for a in checked.addresses] == [PUBLIC_V4, PUBLIC_V6]
    assert not checked.host_is_ip


async def test_default_resolver_sees_localhost_as_loopback() -> None:
    with pytest.raises(UnsafeURL, match="loopback"):
        await check_url("https://localhost/hook", allow_http=False, allow_private=False)
