"""Deterministic outcomes for the channel sandboxes, chosen by documented magic payee values.

Both sandboxes (``adapters/*/sandbox.py``) use this one table so a merchant or a test can
trigger the same behaviour on either channel. A payee account *contains* the keyword
(case-insensitive), or, for bank cards made only of digits, *ends with* the four digits:

=============  =========  ==============================================================
keyword        card tail  behaviour
=============  =========  ==============================================================
``fail``       ``4004``   business failure: payee not found (Alipay PAYEE_NOT_EXIST,
                          WeChat FAIL / PAYEE_ACCOUNT_ABNORMAL); no money moves
``delay``      ``2002``   accepted as DEALING / PROCESSING, SUCCESS after ``delay`` s
``timeout``    ``5004``   order created, the response is held past any client timeout
                          (``hang`` s); the order succeeds meanwhile
``error``      ``5000``   order created and succeeds, but the response is a system error
                          (Alipay 20000, WeChat HTTP 500 SYSTEM_ERROR): outcome unknown
``busy``       ``4290``   first call refused before acceptance (WeChat 429
                          FREQUENCY_LIMITED, Alipay aop.ACQ.SYSTEM_BUSY... 40004
                          ``isv.app-call-limited``); no order is created; the retry succeeds
``return``     ``7007``   SUCCESS, then after ``delay`` s the bank bounces it (Alipay
                          REFUND, WeChat has no bounce state and reports FAIL)
(anything)     (other)    immediate SUCCESS
=============  =========  ==============================================================
"""

from __future__ import annotations

import enum


class Behaviour(enum.StrEnum):
    SUCCESS = "success"
    FAIL = "fail"
    DELAY = "delay"
    TIMEOUT = "timeout"
    ERROR = "error"
    BUSY = "busy"
    RETURN = "return"


_RULES: tuple[tuple[str, str, Behaviour], ...] = (
    ("fail", "4004", Behaviour.FAIL),
    ("delay", "2002", Behaviour.DELAY),
    ("timeout", "5004", Behaviour.TIMEOUT),
    ("error", "5000", Behaviour.ERROR),
    ("busy", "4290", Behaviour.BUSY),
    ("return", "7007", Behaviour.RETURN),
)


def behaviour_for(account: str) -> Behaviour:
    """The sandbox behaviour a payee account asks for."""
    lowered = account.lower()
    digits = account.isdigit()
    for keyword, tail, behaviour in _RULES:
        if keyword in lowered or (digits and account.endswith(tail)):
            return behaviour
    return Behaviour.SUCCESS
