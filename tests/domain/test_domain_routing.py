"""Channel routing."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymux.domain.payees import PayeeType
from paymux.domain.routing import RoutingError, route

CHANNELS = {
    "alipay": frozenset({"alipay_account", "bank_card"}),
    "wechat": frozenset({"wechat_openid"}),
}


def test_default_preference() -> None:
    assert route("alipay_account", None, CHANNELS) == "alipay"
    assert route("bank_card", None, CHANNELS) == "alipay"
    assert route("wechat_openid", None, CHANNELS) == "wechat"


def test_payee_type_enum_values_route() -> None:
    channels = {"alipay": frozenset({PayeeType.ALIPAY_ACCOUNT, PayeeType.BANK_CARD})}
    assert route(PayeeType.BANK_CARD, None, channels) == "alipay"
    assert route("bank_card", None, channels) == "alipay"


def test_requested_channel_is_honoured() -> None:
    both = {**CHANNELS, "wechat": frozenset({"wechat_openid", "bank_card"})}
    assert route("bank_card", "wechat", both) == "wechat"
    assert route("bank_card", "alipay", both) == "alipay"


@pytest.mark.parametrize(
    ("payee_type", "requested", "code"),
    [
        ("alipay_account", "unionpay", "channel_unavailable"),
        ("alipay_account", "", "channel_unavailable"),
        ("alipay_account", "wechat", "payee_type_unsupported"),
        ("wechat_openid", "alipay", "payee_type_unsupported"),
        ("paypal_email", None, "payee_type_unsupported"),
    ],
)
def test_routing_errors(payee_type: str, requested: str | None, code: str) -> None:
    with pytest.raises(RoutingError) as excinfo:
        route(payee_type, requested, CHANNELS)
    assert excinfo.value.code == code
    assert isinstance(excinfo.value, ValueError)


def test_no_channels_at_all() -> None:
    with pytest.raises(RoutingError) as excinfo:
        route("alipay_account", None, {})
    assert excinfo.value.code == "channel_unavailable"


def test_fallback_when_preferred_channel_is_missing() -> None:
    channels = {
        "zeta": frozenset({"bank_card"}),
        "beta": frozenset({"bank_card"}),
        "wechat": frozenset({"wechat_openid"}),
    }
    assert route("bank_card", None, channels) == "beta"  # sorted after the preference list
    assert route("bank_card", None, channels, preference=("zeta",)) == "zeta"
    assert route("bank_card", None, channels, preference=("nope", "wechat")) == "beta"


names = st.sampled_from(["alipay", "wechat", "unionpay", "beta", "zeta"])
types = st.sampled_from(["alipay_account", "bank_card", "wechat_openid"])


@given(
    st.dictionaries(names, st.frozensets(types), max_size=5),
    types,
    st.lists(names, max_size=4),
)
def test_route_returns_a_channel_that_pays(
    channels: dict[str, frozenset[str]], payee_type: str, preference: list[str]
) -> None:
    payers = {name for name, paid in channels.items() if payee_type in paid}
    try:
        chosen = route(payee_type, None, channels, preference)
    except RoutingError:
        assert not payers
        return
    assert chosen in payers
    preferred = [name for name in preference if name in payers]
    if preferred:
        assert chosen == preferred[0]
    else:
        assert chosen == min(payers)
