"""Signal names and numbers as docker reads them (--signal, --stop-signal, STOPSIGNAL, the
runtime's kill): the one parser every layer uses. No `import signal`: that module pulls in
enum (~4 ms), and a table of numbers is all a parser needs."""

from berth.errors import InvalidArgument

# Linux's generic numbering (x86, arm, arm64, ppc, s390x, riscv64), as moby/sys/signal's
# SignalMap names them (without "SIG"); RTMIN and RTMAX are Go's fixed 34 and 64.
SIGRTMIN = 34
SIGRTMAX = 64
SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16,
    "CHLD": 17, "CLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23,
    "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30,
    "SYS": 31, "RTMIN": SIGRTMIN, "RTMAX": SIGRTMAX,
    **{f"RTMIN+{i}": SIGRTMIN + i for i in range(1, 16)},
    **{f"RTMAX-{i}": SIGRTMAX - i for i in range(1, 15)},
}


def parse_signal(raw: str) -> int:
    """moby/sys/signal.ParseSignal: a number as strconv.Atoi reads it, or a name in any case,
    with or without "SIG" ("9", "KILL", "sigkill", "RTMIN+3"). Like the daemon, a number must
    also be a signal this platform has (1..64), so that no caller hands the kernel a bad one.
    Anything else: InvalidArgument "Invalid signal: <raw>", docker's words."""
    digits = raw[1:] if raw[:1] in ("+", "-") else raw
    if digits.isascii() and digits.isdigit():
        number = int(raw)
        if 1 <= number <= SIGRTMAX:
            return number
    else:
        name = raw.upper()
        number = SIGNALS.get(name[3:] if name.startswith("SIG") else name)
        if number is not None:
            return number
    raise InvalidArgument(f"Invalid signal: {raw}")
