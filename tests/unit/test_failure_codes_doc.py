"""docs/FAILURE_CODES.md lists every Paymux failure code and every adapter mapping.

Regenerate after changing a table: ``.venv/bin/python -m tests.unit.test_failure_codes_doc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from paymux_alipay.failure_codes import FAILURE_CODES as ALIPAY
from paymux_alipay.mapping import NO_MONEY_MOVED_SUB_CODES
from paymux_wechat.failure_codes import FAILURE_CODES as WECHAT

from paymux.domain.failures import FAILURES, FailureCode

DOC = Path(__file__).resolve().parents[2] / "docs" / "FAILURE_CODES.md"
TABLES: Mapping[str, Mapping[str, str]] = {"alipay": ALIPAY, "wechat": WECHAT}


def render() -> str:
    lines = [
        "# Failure codes",
        "",
        "A failed (or canceled) transfer carries Paymux's own `failure_code` from the small",
        "vocabulary below, the same on every channel, plus the channel's own words as",
        "`channel_failure_code` and `channel_failure_message`. Filter with",
        "`GET /v1/transfers?failure_code=...`; webhooks carry the same fields.",
        "",
        "A channel code missing from an adapter's table is reported as `channel_rejected` and",
        "counted in the metric `paymux_unknown_channel_failure_codes_total{channel=...}`:",
        "add it to `adapters/<channel>/failure_codes.py` and regenerate this file with",
        "`.venv/bin/python -m tests.unit.test_failure_codes_doc`.",
        "",
        "## Paymux codes",
        "",
        "| failure_code | meaning | a new transfer may succeed |",
        "|---|---|---|",
    ]
    for code in FailureCode:
        info = FAILURES[code]
        retry = "yes" if info.retry_may_help else "no"
        lines.append(f"| `{code.value}` | {info.description} | {retry} |")
    for channel, table in TABLES.items():
        lines += [
            "",
            f"## {channel}",
            "",
            "| channel_failure_code | failure_code |",
            "|---|---|",
        ]
        lines += [f"| `{raw}` | `{mapped}` |" for raw, mapped in sorted(table.items())]
    return "\n".join(lines) + "\n"


def test_every_mapping_targets_a_paymux_code() -> None:
    for table in TABLES.values():
        for raw, mapped in table.items():
            assert FailureCode(mapped), raw


def test_doc_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/FAILURE_CODES.md is stale: python -m tests.unit.test_failure_codes_doc"
    )


def test_every_refusal_the_alipay_adapter_treats_as_definitive_is_mapped() -> None:
    assert set(NO_MONEY_MOVED_SUB_CODES) <= set(ALIPAY)


if __name__ == "__main__":
    DOC.write_text(render(), encoding="utf-8")
