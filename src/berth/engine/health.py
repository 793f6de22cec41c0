"""Health checks as docker's daemon runs them (daemon/health.go): the container's
Config.Healthcheck (the image's merged with the user's), validated as docker validates it;
State.Health set to "starting" by each start and to "unhealthy" by each end; and the plan
of a run's probing (probe_plan): the command, the schedule and the exec's spec, built once
per start, with which the container's supervisor probes it and records each result without
the engine (monitor.probing)."""

from berth.errors import InvalidArgument

# docker's defaults (daemon/health.go) and limits (api/types/container.MinimumDuration)
DEFAULT_INTERVAL = 30_000_000_000
DEFAULT_TIMEOUT = 30_000_000_000
DEFAULT_START_INTERVAL = 5_000_000_000
DEFAULT_RETRIES = 3
MINIMUM_DURATION = 1_000_000
DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")
FIELDS = ("Test",) + DURATIONS + ("Retries",)


def merge(user: dict | None, image: dict | None) -> dict | None:
    """Config.Healthcheck as docker's daemon merges the user's over the image's: every
    field the user left empty comes from the image."""
    if user is None:
        return dict(image) if image else None
    image = image or {}
    merged = {key: user.get(key) or image.get(key) for key in FIELDS}  # in the order docker prints them
    return {key: value for key, value in merged.items() if value}


def validate(health: dict | None) -> None:
    """docker's daemon refuses durations under 1ms (0 means: the default) and negative retries."""
    if not health:
        return
    for key in DURATIONS:
        value = health.get(key) or 0
        if value and value < MINIMUM_DURATION:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
    if (health.get("Retries") or 0) < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")


def probe_command(record: dict) -> list[str] | None:
    """The probe's argv, None when the container has no probe ([], ["NONE"] or no healthcheck)."""
    test = (record["Config"].get("Healthcheck") or {}).get("Test") or []
    if test[:1] == ["CMD"] and len(test) > 1:
        return test[1:]
    if test[:1] == ["CMD-SHELL"] and len(test) > 1:
        return list(record["Config"].get("Shell") or ("/bin/sh", "-c")) + [" ".join(test[1:])]
    return None


def on_start(record: dict) -> None:
    """A start begins "starting" again with a clean streak; the log is kept (docker's
    initHealthMonitor). Containers without a probe get no State.Health, as docker's."""
    if probe_command(record) is None:
        return
    previous = record["State"].get("Health") or {}
    record["State"]["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": previous.get("Log") or []}


class Schedule:
    """The container's probe timing in seconds, docker's defaults for what is unset."""

    __slots__ = ("interval", "timeout", "start_period", "start_interval", "retries")

    def __init__(self, health: dict):
        self.interval = (health.get("Interval") or DEFAULT_INTERVAL) / 1e9
        self.timeout = (health.get("Timeout") or DEFAULT_TIMEOUT) / 1e9
        self.start_period = (health.get("StartPeriod") or 0) / 1e9
        self.start_interval = (health.get("StartInterval") or DEFAULT_START_INTERVAL) / 1e9
        self.retries = health.get("Retries") or DEFAULT_RETRIES


def probe_plan(engine, container_id: str, pid: int) -> dict | None:
    """What the supervisor of the run `pid` needs to probe it without the engine
    (monitor.probing.Probing): the command, the schedule, the exec's OCI process, namespaces,
    cgroup and seccomp filter (as `berth exec` gets them), the health so far and its events'
    actor. None when there is nothing to probe, or the run is over already."""
    from berth.runtime.probe import PER_PROBE, join_files, leave_files  # lazy: only containers with a health check
    from berth.units import parse_rfc3339  # lazy: only probes read times

    record = engine.load(container_id)
    argv = probe_command(record)
    state = record["State"]
    if argv is None or not state["Running"] or state["Pid"] != pid:
        return None
    schedule = Schedule(record["Config"].get("Healthcheck") or {})
    spec, program = engine.exec_spec(record, argv)
    cgroup = engine.cgroup(record)
    per_probe, launcher = cgroup.split_directories(PER_PROBE)
    config = record["Config"]
    attributes = {**(config.get("Labels") or {}), "name": record["Name"].lstrip("/")}
    if config.get("Image"):
        attributes["image"] = config["Image"]
    return {"id": container_id, "pid": pid, "root": engine.paths.root,
            "run_dir": engine.paths.container_run(container_id), "argv": argv,
            "interval": schedule.interval, "timeout": schedule.timeout, "start_period": schedule.start_period,
            "start_interval": schedule.start_interval, "retries": schedule.retries,
            "started": parse_rfc3339(state["StartedAt"]),
            "health": state.get("Health") or {"Status": "starting", "FailingStreak": 0, "Log": []},
            "process": spec["process"], "namespaces": [[ns["type"], ns["path"]] for ns in spec["linux"]["namespaces"]],
            "join": join_files(per_probe), "leave": leave_files(per_probe), "stay": join_files(launcher),
            "freeze_file": cgroup.freeze_file(),
            "seccomp": None if program is None else [program.flags, program.bpf.hex()],
            "actor": [container_id, attributes]}
