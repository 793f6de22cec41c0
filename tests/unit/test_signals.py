"""berth.signals.parse_signal: the one reader of signal names and numbers (kill -s, stop -s,
--stop-signal, STOPSIGNAL, berth-runtime kill), as moby/sys/signal.ParseSignal reads them."""

import signal

import pytest

from berth.errors import InvalidArgument
from berth.signals import SIGNALS, parse_signal


@pytest.mark.parametrize("raw, number", [
    ("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("sigkill", 9), ("SigTerm", 15), ("9", 9), ("+9", 9),
    ("HUP", 1), ("USR1", 10), ("SIGUSR2", 12), ("CLD", 17), ("IOT", 6), ("POLL", 29), ("STKFLT", 16),
    ("RTMIN", 34), ("RTMIN+3", 37), ("sigrtmin+15", 49), ("RTMAX-1", 63), ("SIGRTMAX", 64), ("64", 64),
])
def test_docker_forms(raw, number):
    assert parse_signal(raw) == number


@pytest.mark.parametrize("raw", [
    "", "0", "-9", "65", "99", "99999999999999999999", "NOSUCHSIG", "SIG", "SIGSIGKILL", "RTMIN+16",
    "RTMAX-15", "RTMIN+0", "9 ", " 9", "1_0", "\u0669",  # Arabic-Indic nine: not an ASCII digit
    "_DFL", "SIG_IGN", "SIG_BLOCK",  # Python's signal module has these; they are not signals
])
def test_refused_with_dockers_words(raw):
    with pytest.raises(InvalidArgument) as info:
        parse_signal(raw)
    assert str(info.value) == f"Invalid signal: {raw}"


def test_numbers_match_this_kernel():
    """The table is Linux's generic numbering; on this machine it must agree with libc's."""
    for name, number in SIGNALS.items():
        if "+" in name or "-" in name or name in ("RTMIN", "RTMAX"):
            continue
        assert int(getattr(signal, "SIG" + name)) == number, name
    assert signal.SIGRTMAX == SIGNALS["RTMAX"]
