"""The --health-* flags of run/create as docker's CLI reads them (cli/command/container/opts.go):
Go durations, its refusals of negative values and of --no-healthcheck with any of them, and
Config.Healthcheck in the API's shape (durations in ns, empty fields left out)."""

from berth.errors import InvalidArgument, UsageError
from berth.units import parse_duration_ns

DURATIONS = (("health_interval", "Interval"), ("health_timeout", "Timeout"), ("health_start_period", "StartPeriod"),
             ("health_start_interval", "StartInterval"))


def healthcheck_from(opts) -> dict | None:
    """Config.Healthcheck: {"Test": ["NONE"]} for --no-healthcheck, else the flags given
    (a Test only with --health-cmd: the image's probe keeps the rest, see engine.health.merge)."""
    durations = {key: _duration(dest, getattr(opts, dest)) for dest, key in DURATIONS}
    given = bool(opts.health_cmd) or opts.health_retries != 0 or any(durations.values())
    if opts.no_healthcheck:
        if given:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    for dest, key in DURATIONS[:2] + (("health_retries", "Retries"),) + DURATIONS[2:]:
        value = durations.get(key, opts.health_retries)
        if value < 0:
            raise InvalidArgument(f"--{dest.replace('_', '-')} cannot be negative")
    health = {"Test": ["CMD-SHELL", opts.health_cmd]} if opts.health_cmd else {}
    health.update((key, value) for key, value in durations.items() if value)
    if opts.health_retries:
        health["Retries"] = opts.health_retries
    return health


def _duration(dest: str, value: str | None) -> int:
    """pflag's DurationVar: Go's time.ParseDuration, its error as pflag words it."""
    if value is None:
        return 0
    try:
        return parse_duration_ns(value)
    except ValueError as err:
        raise UsageError(f'invalid argument "{value}" for "--{dest.replace("_", "-")}" flag: {err}') from None
