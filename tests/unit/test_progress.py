"""Progress of long CLI work: plain lines off a terminal, a rich bar on one."""

from __future__ import annotations

import io

from paymux.progress import progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_at_each_tenth_and_a_done_line() -> None:
    out = io.StringIO()
    with progress("prefill", total=1000, stream=out) as bar:
        for _ in range(100):
            bar.advance(10)
    lines = out.getvalue().splitlines()
    assert lines[0] == "prefill: 100/1000 (10%)"
    assert lines[9] == "prefill: 1000/1000 (100%)"
    assert len(lines) == 11 and lines[-1].startswith("prefill: done, 1000 in ")
    assert "\x1b[" not in out.getvalue()  # no terminal escapes in a log file


def test_plain_notes_are_printed_for_each_step() -> None:
    out = io.StringIO()
    with progress("ledger check", total=2, stream=out) as bar:
        bar.advance(note="entries balance")
        bar.advance(note="journal replayed")
    assert out.getvalue().splitlines()[:2] == [
        "ledger check: 1/2 (50%)  entries balance",
        "ledger check: 2/2 (100%)  journal replayed",
    ]


def test_terminal_gets_a_rich_bar() -> None:
    out = Tty()
    with progress("prefill", total=4, stream=out) as bar:
        bar.advance(4, note="all rows")
    text = out.getvalue()
    assert "prefill" in text and "4/4" in text and "all rows" in text
    assert "done," not in text  # the plain format is not used on a terminal
