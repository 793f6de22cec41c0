"""Health checks as docker's daemon runs them (daemon/health.go): the container's
Config.Healthcheck (the image's merged with the user's), validated as docker validates it;
State.Health set to "starting" by each start and to "unhealthy" by each end; one probe
run with exec semantics (engine.execs) and its result recorded: the last 5 results, the
failing streak, the status and its health_status event. The container's supervisor
(monitor.health) only keeps the schedule; the engine decides everything else."""

import binascii
import os
import time

from berth import fastjson
from berth.engine import events
from berth.errors import BerthError, InvalidArgument, NotFound

# docker's defaults (daemon/health.go) and limits (api/types/container.MinimumDuration)
DEFAULT_INTERVAL = 30_000_000_000
DEFAULT_TIMEOUT = 30_000_000_000
DEFAULT_START_INTERVAL = 5_000_000_000
DEFAULT_RETRIES = 3
MINIMUM_DURATION = 1_000_000
MAX_LOG_ENTRIES = 5
MAX_OUTPUT_LEN = 4096
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

    def next_delay(self, started: float, current: str) -> float:
        """docker's getInterval: the start interval while starting within the start period."""
        if time.time() - started < self.start_period and current == "starting":
            return self.start_interval
        return self.interval


class Prober:
    """One running container's probing, for its supervisor: `delay()` until the next
    probe, `check()` runs one and records it. `pid` is the run being probed: a result that
    arrives after that run ended is dropped. The probes start from a launcher that has
    joined the container once (runtime.probe), made at the first probe of the run."""

    __slots__ = ("engine", "container_id", "pid", "argv", "schedule", "started", "current", "launcher")

    def __init__(self, engine, container_id: str, pid: int):
        record = engine.load(container_id)
        self.engine = engine
        self.container_id = container_id
        self.pid = pid
        self.argv = probe_command(record)
        self.schedule = Schedule(record["Config"].get("Healthcheck") or {})
        self.started = _started_at(record)
        self.current = "starting"
        self.launcher = None

    def delay(self) -> float | None:
        """Seconds until the next probe; None when there is nothing to probe."""
        if self.argv is None:
            return None
        return self.schedule.next_delay(self.started, self.current)

    def check(self) -> bool:
        """Run the probe once and record its result; False once the run is over."""
        try:
            record = self.engine.store.read(self.container_id)  # is it paused? (as written: cheap)
        except (NotFound, FileNotFoundError):
            return False
        if record["State"]["Paused"]:  # docker does not probe a paused container
            return True
        result = self.run_probe(record)
        current = record_result(self.engine, self.container_id, self.pid, result, self.schedule, self.started)
        if current is None:
            return False
        self.current = current
        return True

    def run_probe(self, record: dict) -> dict:
        """One probe as docker's cmdProbe: the command exec'd in the container (docker's
        exec_create, exec_start and exec_die events), its stdout and stderr together, the
        first 4096 bytes kept; killed after the timeout. An exec that cannot start (paused,
        ended) is docker's probe error: exit code -1, the error as output (record_result
        drops it if the run is over)."""
        begun = time.time_ns()
        root = self.engine.paths.root
        exec_id = events.exec_started(root, record, self.argv)
        timeout = self.schedule.timeout
        try:
            code, output, truncated, timed_out = self._launcher(record).run(self.argv, timeout, MAX_OUTPUT_LEN)
        except BerthError as err:
            if self.launcher is not None and not self.launcher.alive:
                self.close()  # made again for the next probe
            return _result(begun, -1, str(err))
        events.exec_died(root, record, exec_id, code)
        if timed_out:
            return _result(begun, -1, f"Health check exceeded timeout ({go_duration(round(timeout * 1e9))})")
        return _result(begun, code, output.decode("utf-8", "replace") + ("..." if truncated else ""))

    def _launcher(self, record: dict):
        if self.launcher is None:
            from berth.runtime.probe import ProbeLauncher  # lazy: only a prober starts one

            spec, program = self.engine.exec_spec(record, self.argv)
            self.launcher = ProbeLauncher(spec, program, self.engine.cgroup(record).directories())
        return self.launcher

    def close(self) -> None:
        """The launcher ends (the prober's end ends it too)."""
        if self.launcher is not None:
            self.launcher.close()
            self.launcher = None


def _result(begun: int, code: int, output: str) -> dict:
    from berth.units import format_rfc3339_nano_ns  # lazy: only probes format times

    return {"Start": format_rfc3339_nano_ns(begun), "End": format_rfc3339_nano_ns(time.time_ns()),
            "ExitCode": code, "Output": output}


def record_result(engine, container_id: str, pid: int, result: dict, schedule: Schedule,
                  started: float) -> str | None:
    """docker's handleProbeResult, under the container's lock: the result logged (last 5),
    the streak and status updated, a health_status event when the status changed. The
    new status; None if the run `pid` is over (the result is dropped).

    A probe that changes the status rewrites the record (durable: it is what a reboot keeps);
    the others, most of them, only write the run's health file beside it (probed_path), the
    record's State.Health until the record is written again (Engine.load merges them): a
    probe every second then costs a write of a few hundred bytes, not of the record."""
    try:
        with engine.locked(container_id) as record:
            state = record["State"]
            health = state.get("Health")
            if not state["Running"] or state["Pid"] != pid or health is None:
                return None
            if state["Paused"]:  # docker does not probe a paused container, nor keep a result in flight
                return health["Status"]
            before = health["Status"]
            health["Log"] = (health.get("Log") or [])[-(MAX_LOG_ENTRIES - 1):] + [result]
            if result["ExitCode"] == 0:
                health.update(Status="healthy", FailingStreak=0)
            elif before != "starting" or _probe_time(result) - started >= schedule.start_period:
                health["FailingStreak"] += 1  # failures within the start period do not count
                if health["FailingStreak"] >= schedule.retries:
                    health["Status"] = "unhealthy"
            if health["Status"] != before:
                engine.store.write(record, durable=False)
            else:
                write_probed(engine.paths, container_id, pid, health)
    except NotFound:
        return None
    if health["Status"] != before:
        events.container(engine.paths.root, record, "health_status: " + health["Status"])
    return health["Status"]


def probed_path(paths, container_id: str) -> str:
    """The run's health file: State.Health as its last probe left it, when that is newer than
    the record (record_result)."""
    return os.path.join(paths.container_run(container_id), "health.json")


def write_probed(paths, container_id: str, pid: int, health: dict) -> None:
    """The health file rewritten in place, its checksum first: a temp file renamed over it
    costs ext4 a flush of its data (auto_da_alloc), ten times the write; a reader that
    catches it half-written sees a wrong checksum and keeps the record's State.Health."""
    text = fastjson.dumps({"Pid": pid, "Health": health}).encode()
    data = b"%08x " % binascii.crc32(text) + text
    fd = os.open(probed_path(paths, container_id), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def merge_probed(paths, record: dict, record_written: int | None) -> None:
    """State.Health of a running container from its health file, when that file is of this
    run (its pid), whole, and newer than the record (`record_written`, its st_mtime_ns):
    whatever rewrites the record later (a pause, a stop, a status change) carries the
    merged health on."""
    try:
        with open(probed_path(paths, record["Id"]), "rb") as f:
            # <=: times are the kernel's coarse clock, a record written in the same tick wins
            if record_written is not None and os.fstat(f.fileno()).st_mtime_ns <= record_written:
                return
            checksum, _, text = f.read().partition(b" ")
        if int(checksum, 16) != binascii.crc32(text):
            return
        probed = fastjson.loads(text)
    except (FileNotFoundError, ValueError):
        return
    if probed.get("Pid") == record["State"]["Pid"] and isinstance(probed.get("Health"), dict):
        record["State"]["Health"] = probed["Health"]


def _started_at(record: dict) -> float:
    from berth.units import parse_rfc3339  # lazy: only probes read times

    return parse_rfc3339(record["State"]["StartedAt"])


def _probe_time(result: dict) -> float:
    from berth.units import parse_rfc3339  # lazy: only probes read times

    return parse_rfc3339(result["Start"])


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): 200ms, 1.5s, 1m30s, 1h0m0s."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _fraction(ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _fraction(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _fraction(value: int, unit: int) -> str:
    whole, part = divmod(value, unit)
    if not part:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{part:0{digits}d}".rstrip("0")

