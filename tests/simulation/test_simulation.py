"""The simulation in miniature (a few seeds, few operations; CI runs `make simulate` for the
real thing), and its checker proven on crafted breaks so a silent checker cannot pass."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.simulation.invariants import (
    ChannelOrderFacts,
    TransferFacts,
    backwards,
    channel_agreement,
    expected_entries,
    expected_events,
)
from tests.simulation.run import Simulation, make_template, run_seed


def _facts(status: str, ref: str = "PMX1") -> TransferFacts:
    return TransferFacts("mer_1", "k1", status, 1000, 50, "alipay", ref)


def test_event_chains_one_event_per_step() -> None:
    assert expected_events("succeeded", ["processing", "succeeded"]) == []
    assert expected_events("returned", ["succeeded", "returned"]) == []
    assert expected_events("pending", []) == []
    assert expected_events("succeeded", ["processing"])  # a move without its event
    assert expected_events("succeeded", ["succeeded", "succeeded"])  # an event twice
    assert expected_events("processing", ["failed", "processing"])  # out of a final state


def test_ledger_entries_match_the_steps() -> None:
    assert (
        expected_entries(["processing", "succeeded", "returned"], ["hold", "settle", "reverse"])
        == []
    )
    assert expected_entries(["failed"], ["hold", "release"]) == []
    assert expected_entries(["succeeded"], ["hold", "settle", "settle"])  # settled twice
    assert expected_entries(["failed"], ["hold"])  # a hold never released


def test_backwards_moves_are_caught() -> None:
    assert backwards("processing", "succeeded") is None
    assert backwards("succeeded", "processing")
    assert backwards("failed", "succeeded")
    assert backwards("succeeded", "failed")  # same rank: a succeeded transfer never fails


def test_channel_agreement() -> None:
    t = _facts("succeeded")
    order = ChannelOrderFacts("alipay", "PMX1", 1000, "succeeded", 1)
    assert channel_agreement({"PMX1": t}, {"PMX1": order}.get, ["PMX1"]) == []
    twice = ChannelOrderFacts("alipay", "PMX1", 1000, "succeeded", 2)
    assert channel_agreement({"PMX1": t}, {"PMX1": twice}.get, ["PMX1"])
    failed_there = ChannelOrderFacts("alipay", "PMX1", 1000, "failed", 1)
    assert channel_agreement({"PMX1": t}, {"PMX1": failed_there}.get, ["PMX1"])
    assert channel_agreement({"PMX1": t}, {}.get, ["PMX1"])  # succeeded without an order
    assert channel_agreement({}, {"PMX1": order}.get, ["PMX1"])  # an order we never made


def test_seeds_pass_and_replay_identically(tmp_path: Path) -> None:
    first = asyncio.run(run_seed(3, 150, tmp_path))
    again = asyncio.run(run_seed(3, 150, tmp_path))
    other = asyncio.run(run_seed(4, 150, tmp_path))
    assert first.ok, first.message
    assert other.ok, other.message
    assert first.counts == again.counts  # a seed is a replayable history
    assert first.counts["transfers"] > 10
    assert first.counts.get("crashes", 0) + other.counts.get("crashes", 0) > 0


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE accounts SET balance = balance + 1 WHERE kind = 'merchant_available'",
        "DELETE FROM events WHERE rowid = (SELECT MAX(rowid) FROM events"
        " WHERE type LIKE 'transfer.%')",
        "UPDATE transfers SET status = 'pending', updated_at = '2100-01-01 00:00:00.000000'"
        " WHERE rowid = (SELECT MIN(rowid) FROM transfers WHERE status = 'succeeded')",
    ],
)
def test_the_checker_sees_a_broken_database(tmp_path: Path, tamper: str) -> None:
    async def scenario() -> list[str]:
        sim = Simulation(11, 80, tmp_path, await make_template(tmp_path))
        try:
            await sim.run()
            sim.check("before tampering")  # sound so far
            with sqlite3.connect(sim.path) as conn:
                conn.execute(tamper)
            return sim.checker.full(
                sim.model.topups, sim.order_of, list(sim.world.by_ref), sim.world.now
            )
        finally:
            await sim.close()

    assert asyncio.run(scenario())
