"""A container's health checks, run by its supervisor (docker's health monitor): the
container's probe launcher (runtime.probe: forked from the supervisor at the first probe, it
has joined the container as an exec does, with the exec's OCI spec that the engine built at
the start: engine.health.probe_plan) keeps the schedule and starts each probe; each answer
wakes the supervisor's own poll loop (monitor.lean.copy_output) once, and its result is
recorded as docker's handleProbeResult does. The loop's timeout watches for a launcher that
does not answer in time.

Recording needs no engine: the last 5 results, the failing streak and the status. A probe
that leaves the status as it was only rewrites the run's health file (read_probed merges it
into State.Health when it is newer than the record); one that changes it rewrites the record,
under the container's lock, and emits health_status. Probes emit docker's exec_create,
exec_start and exec_die events (written together when the probe ended, each with its time).

Nothing here imports more than os, time, binascii and fastjson until a supervisor probes
(Probing): the engine reads health files (read_probed) on every look at such a container."""

import binascii
import os
import time

from berth import fastjson

MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096  # docker's maxOutputLen
LATE = 10.0  # seconds past a probe's timeout before its launcher is taken for stuck (and ended)
EXEC_FAILED = "OCI runtime exec failed: exec failed: unable to start container process: {}: unknown"


# -- the health file -------------------------------------------------------------------------

def probed_path(run_dir: str) -> str:
    """The run's health file, in the container's run directory."""
    return os.path.join(run_dir, "health.json")


class ProbedFile:
    """The health file, kept open by the prober and rewritten in place, its checksum first:
    a temp file renamed over it costs ext4 a flush of its data (auto_da_alloc), ten times the
    write; a reader that catches it half-written, or longer than what was last written (cut
    only when shorter), sees a wrong checksum and keeps the record's State.Health."""

    __slots__ = ("path", "fd", "size")

    def __init__(self, run_dir: str):
        self.path = probed_path(run_dir)
        self.fd = -1
        self.size = -1

    def write(self, pid: int, health: dict) -> None:
        text = fastjson.dumps({"Pid": pid, "Health": health}).encode()
        data = b"%08x " % binascii.crc32(text) + text
        if self.fd < 0:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            self.size = -1
        os.pwrite(self.fd, data, 0)
        if len(data) != self.size:
            os.ftruncate(self.fd, len(data))
            self.size = len(data)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def read_probed(run_dir: str, record: dict, record_written: int | None) -> None:
    """State.Health of a running container from its health file, when that file is of this
    run (its pid), whole, and newer than the record (`record_written`, its st_mtime_ns):
    whatever rewrites the record later (a pause, a stop, a status change) carries the merged
    health on."""
    try:
        with open(probed_path(run_dir), "rb") as f:
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


# -- docker's rules ---------------------------------------------------------------------------

def next_delay(plan: dict, current: str) -> float:
    """docker's getInterval, as the launcher keeps it (runtime.probe.interval_after)."""
    from berth.runtime.probe import interval_after  # lazy: the supervisor's, not the engine's

    return interval_after(current == "starting", plan["started"] + plan["start_period"], plan["start_interval"],
                          plan["interval"])


def apply_result(health: dict, result: dict, plan: dict) -> None:
    """docker's handleProbeResult on State.Health: the result logged (last 5), the streak and
    the status updated; failures within the start period do not count."""
    before = health["Status"]
    health["Log"] = (health.get("Log") or [])[-(MAX_LOG_ENTRIES - 1):] + [result]
    if result["ExitCode"] == 0:
        health.update(Status="healthy", FailingStreak=0)
    elif before != "starting" or _unix(result["Start"]) - plan["started"] >= plan["start_period"]:
        health["FailingStreak"] = health.get("FailingStreak", 0) + 1
        if health["FailingStreak"] >= plan["retries"]:
            health["Status"] = "unhealthy"


def _unix(rfc3339: str) -> float:
    from berth.units import parse_rfc3339  # lazy: only failing probes in a start period read times

    return parse_rfc3339(rfc3339)


def _result(begun: int, code: int, output: str) -> dict:
    from berth.units import format_rfc3339_nano_ns  # the lean monitor has units already

    return {"Start": format_rfc3339_nano_ns(begun), "End": format_rfc3339_nano_ns(time.time_ns()),
            "ExitCode": code, "Output": output}


# -- probing ----------------------------------------------------------------------------------

class Probing:
    """The probing of one run of a container, for the poll loop of whoever supervises it:
    `timeout()` until it needs the loop again, `readers()` to watch, `handle(ready)` after
    each wake-up; `handoff()` before its supervisor execs, `close()` when the run ended.

    `plan` (engine.health.probe_plan, JSON: it crosses execs): id, pid (the run), root,
    run_dir, argv, interval/timeout/start_period/start_interval (seconds), retries, started
    (unix time of the start), health (State.Health now), process (the exec's OCI process),
    namespaces ([[type, path]]), join/leave (cgroup files), freeze_file, seccomp ([flags,
    bpf hex] or None), actor ([id, attributes] of its events), due (unix time of the next
    probe, once scheduled)."""

    __slots__ = ("plan", "health", "due", "launcher", "seen", "record_path", "freezer", "probed", "journal",
                 "events", "sweeping")

    def __init__(self, plan: dict):
        self.plan = plan
        self.health = plan["health"]
        self.due = plan.get("due") or time.time() + next_delay(plan, self.health["Status"])
        self.launcher = None  # runtime.probe.ProbeLauncher, made at the first probe; it keeps the schedule
        self.seen = None  # the record's st_mtime_ns when we last took its State.Health
        self.record_path = os.path.join(plan["root"], "containers", plan["id"], "config.json")
        # What every probe uses, made at the first: kept open, formatted once (a probe a second
        # for the container's life: each open, dict and encoding saved counts)
        self.freezer = -1  # the freezer state file's fd
        self.probed = ProbedFile(plan["run_dir"])
        self.journal = None  # journal.Appender
        self.events = None  # (exec_create, exec_start, exec_die) journal.Templates
        self.sweeping = False  # a launcher was ended amid a probe: its probe becomes ours (_sweep)

    def timeout(self) -> float:
        """Seconds until the loop must call handle() even if nothing is ready: the first probe,
        then the watchdog of the launcher's next answer."""
        if self.launcher is not None:
            return max(0.0, self.due + self.plan["timeout"] + LATE - time.time())
        return max(0.0, self.due - time.time())

    def readers(self) -> list[int]:
        return [self.launcher.answers] if self.launcher is not None else []

    def handle(self, ready) -> None:
        if self.sweeping:
            self._sweep()
        if self.launcher is not None:
            if self.launcher.answers in ready:
                answer = self.launcher.answer()
                if answer is not None:
                    self._finish(answer)
            elif time.time() >= self.due + self.plan["timeout"] + LATE:
                if self._frozen():  # paused: the launcher waits (on cgroup v1, frozen with it)
                    self.due = time.time() + self.plan["interval"]
                else:  # its launcher is stuck
                    begun = int(self.due * 1e9)
                    self._end_launcher()
                    self._finish({"error": "the container's probe launcher ended", "ended": True, "begun": begun})
            return
        if time.time() >= self.due:
            self._start()

    def handoff(self) -> dict:
        """What the next exec of the supervisor needs: a probe in flight is ended, not
        recorded, and is due again (the next launcher is made by it)."""
        self.close()
        return dict(self.plan, health=self.health, due=self.due)

    def close(self) -> None:
        """The run ended: the launcher ends, and a probe in flight with it."""
        self._end_launcher()
        self.probed.close()
        if self.journal is not None:
            self.journal.close()
        if self.freezer >= 0:
            os.close(self.freezer)
            self.freezer = -1

    # -- one probe ----------------------------------------------------------------------------
    def _start(self) -> None:
        """The launcher made, with the schedule from now on (a first probe at once)."""
        from berth.runtime.probe import ProbeLauncher, schedule_line  # lazy: only once a probe starts

        plan = self.plan
        if self._frozen():  # docker does not probe a paused container
            self.due = time.time() + plan["interval"]
            return
        if self.events is None:
            self._prepare()
        self.due = time.time()
        try:
            seccomp = plan.get("seccomp")
            self.launcher = ProbeLauncher(plan["process"], plan["namespaces"],
                                          None if seccomp is None else (seccomp[0], bytes.fromhex(seccomp[1])),
                                          plan["join"], plan["leave"], plan.get("stay") or [], plan.get("freeze_file"))
            self.launcher.send(schedule_line(plan["argv"], plan["timeout"], MAX_OUTPUT, self.due, plan["interval"],
                                             plan["start_interval"], plan["started"] + plan["start_period"],
                                             self.health["Status"] == "starting"))
        except OSError as err:  # the run is ending (its namespaces, its cgroup are going)
            self._end_launcher()
            self._finish({"error": str(err), "ended": True, "begun": time.time_ns()})

    def _finish(self, answer: dict) -> None:
        """docker's handleProbeResult for one probe's `answer` (engine-free: the record is read
        and written as files, under the container's lock), and the probe's exec events, all
        three at once with their own times (the supervisor is woken by answers only)."""
        plan = self.plan
        begun = answer.get("begun") or time.time_ns()
        exec_id = os.urandom(32).hex()
        created, started, died = self.events
        events = created.fill((exec_id,), begun) + started.fill((exec_id,), begun)
        if "error" in answer:
            self.journal.append(events)
            if answer.get("ended"):
                self._end_launcher()  # made again for the next probe
                result = _result(begun, -1, answer["error"])
            else:
                result = _result(begun, -1, EXEC_FAILED.format(answer["error"]))
        else:
            self.journal.append(events + died.fill((exec_id, str(answer["code"])), time.time_ns()))
            if answer["timed_out"]:
                from berth.gotime import go_duration  # lazy: only a probe that timed out

                timeout = go_duration(round(plan["timeout"] * 1e9))
                result = _result(begun, -1, f"Health check exceeded timeout ({timeout})")
            else:
                output = answer["output"].encode("latin-1").decode("utf-8", "replace")
                result = _result(begun, answer["code"], output + ("..." if answer["truncated"] else ""))
        changed = self._save(result)
        if changed is not None:
            self._event("health_status: " + changed, {})
            if self.launcher is not None and changed != "starting":  # its schedule's start interval ends
                try:
                    self.launcher.send(b'{"starting":false}\n')
                except OSError:  # it ended: its answers' end says so at the next wake-up
                    pass
        self.due = time.time() + next_delay(plan, self.health["Status"])

    def _end_launcher(self) -> None:
        if self.launcher is not None:
            self.launcher.close()
            self.launcher = None
            self.sweeping = True
            self._sweep()

    def _sweep(self) -> None:
        """A probe outlives its ended launcher (one frozen with a paused container, say) and
        becomes our child, we being a subreaper: it is killed and reaped here, on each wake-up
        until none is left, or the container's init, once it ends, waits for ever for it in
        its pid namespace (zap_pid_ns_processes) while we wait for the init."""
        from berth.runtime.probe import launchers_unreaped  # lazy: only after a launcher ended

        pid = os.getpid()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                children = {int(child) for child in f.read().split()}
        except OSError:
            return
        ours = {self.plan["pid"], *launchers_unreaped()}
        if self.launcher is not None:
            ours.add(self.launcher.pid)
        orphans = children - ours
        for child in orphans:
            try:
                os.kill(child, 9)  # SIGKILL (the signal module imports enum)
                os.waitpid(child, os.WNOHANG)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.sweeping = bool(orphans or launchers_unreaped())

    def _save(self, result: dict) -> str | None:
        """The result applied and written; the new status if it changed (None otherwise, or
        when the result is dropped: the run is over, or it is paused). A result that leaves
        the status as it was, while the record is as we last saw it, only rewrites the health
        file, without the lock: the record is not ours to change then, and whoever rewrites
        it meanwhile (a pause, a stop) keeps its State.Health or, for this run, merges ours."""
        from berth.fs import Lock, read_json, write_json  # lazy: the fs module is small, and only probes write

        plan = self.plan
        record_path = self.record_path
        try:
            if os.stat(record_path).st_mtime_ns == self.seen:
                health = dict(self.health)
                apply_result(health, result, plan)
                if health["Status"] == self.health["Status"]:
                    self.health = health
                    self.probed.write(plan["pid"], health)
                    return None
            with Lock(os.path.join(plan["root"], "containers", plan["id"], "lock")):
                written = os.stat(record_path).st_mtime_ns
                record = None
                if written != self.seen:  # written by someone else (a pause, a stop...): theirs is the truth
                    record = read_json(record_path)
                    state = record["State"]
                    if not state["Running"] or state["Pid"] != plan["pid"] or state.get("Health") is None:
                        return None
                    if state["Paused"]:
                        return None
                    read_probed(plan["run_dir"], record, written)
                    self.health = record["State"]["Health"]
                    self.seen = written
                before = self.health["Status"]
                apply_result(self.health, result, plan)
                if self.health["Status"] == before:
                    self.probed.write(plan["pid"], self.health)
                    return None
                if record is None:
                    record = read_json(record_path)
                record["State"]["Health"] = self.health
                write_json(record_path, record, durable=False)
                self.seen = os.stat(record_path).st_mtime_ns
                return self.health["Status"]
        except (FileNotFoundError, NotADirectoryError):  # removed meanwhile
            return None

    def _event(self, action: str, extra: dict) -> None:
        from berth.journal import emit  # lazy: the journal module is small, and only probes emit

        actor_id, attributes = self.plan["actor"]
        emit(self.plan["root"], "container", action, actor_id, attributes, None, extra)

    def _prepare(self) -> None:
        """The journal and the probe events' templates, at the first probe."""
        from berth.journal import Appender, Template  # lazy: the journal module is small, and only probes emit

        plan = self.plan
        actor_id, attributes = plan["actor"]
        command = " ".join(plan["argv"])
        self.journal = Appender(plan["root"])
        self.events = (Template("container", "exec_create: " + command, actor_id, attributes, ("execID",)),
                       Template("container", "exec_start: " + command, actor_id, attributes, ("execID",)),
                       Template("container", "exec_die", actor_id, attributes, ("execID", "exitCode")))

    def _frozen(self) -> bool:
        """The container's cgroup is frozen (paused): its state file, kept open, read again."""
        from berth.runtime.probe import frozen  # lazy: only once a probe is due

        if self.freezer < 0 and self.plan.get("freeze_file"):
            try:
                self.freezer = os.open(self.plan["freeze_file"], os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return False
        return frozen(self.freezer)
