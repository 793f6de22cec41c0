"""Crash injection (issue 13): each state-changing berth command is SIGKILLed at its state-changing
system calls in turn (strace's `inject=SYSCALL:signal=KILL:when=K`, every traced process at its
K-th call), then checked from outside berth: one ordinary command (the same command again, or
`rm -f`) must work, every container, volume and image berth lists must inspect and remove, the
same name and host port must be usable again at once, and no name, lease, port reservation,
nftables element, veth, mount, cgroup, frozen container, process, temp file or (after `system
prune -af`) unreferenced blob may remain.

The kill points come from one run of the command without injection: every (syscall, K) at which
some process makes a state-changing call. They are sampled to BERTH_CRASH_TRIALS per command
(default 10; "all" tries every one), keeping the first and last point of each kind of call. A
trial that finds damage reports it and starts the next one on a fresh root. Set BERTH_CRASH_REPORT
to a file to get every trial as a JSON line."""

import io
import json
import os
import random
import socket
import subprocess
import tarfile
import time

import pytest

import crashcheck as cc

NAME = "crashc"
VOLUME = "crashvol"
LONG = ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]  # stops at once on SIGTERM
IMAGE_COMMANDS = {"commit", "load", "import", "tag", "rmi"}


def _budget() -> int:
    value = os.environ.get("BERTH_CRASH_TRIALS", "10")
    return 0 if value == "all" else int(value)


def _free_port() -> int:
    while True:
        port = random.randint(20000, 29999)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
                return port
            except OSError:
                continue


def _small_tar(path: str, files: int = 24) -> str:
    """A rootfs tar of its own (random content, so its layer is new to the store)."""
    with tarfile.open(path, "w") as tar:
        for directory in ("data", "data/sub"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for i in range(files):
            body = os.urandom(4096)
            info = tarfile.TarInfo(f"data/{'sub/' if i % 2 else ''}f{i}")
            info.size, info.mode = len(body), 0o644
            tar.addfile(info, io.BytesIO(body))
    return path


class Case:
    """One command under test: what exists before it runs (setup), the command, and the ordinary
    command run after a crash that must succeed (retry; `ok_codes` maps an exit code to the words
    its stderr must hold for it to count as a success, e.g. rmi of what is gone)."""

    def __init__(self, name, command, setup=(), retry=None, ok_codes=None, volume=False, once=None):
        self.name, self.command, self.setup, self.retry = name, command, list(setup), retry
        self.ok_codes = ok_codes or {}
        self.volume = volume  # the reuse run mounts the volume (first-mount case)
        self.once = once  # per-test preparation: (b, work dir) -> None


def _run_d(port, *extra):
    return ["run", "-d", "--name", NAME, "-p", f"{port}:80", *extra, "busybox", *LONG]


def _cases(port: int, work: str) -> dict[str, Case]:
    tar = os.path.join(work, "small.tar")
    saved = os.path.join(work, "saved.tar")

    def make_saved(b):
        b.ok("import", _small_tar(tar), "crash/load:1")
        b.ok("save", "-o", saved, "crash/load:1")
        b.ok("rmi", "crash/load:1")

    running = [_run_d(port)]
    cases = [
        # run and create: the ordinary commands are `ps -a` + `rm -f` of what it shows + `rm -f NAME`,
        # then the same run again (the reuse step every case ends with)
        Case("run -d -p", _run_d(port)),
        Case("run --rm -p", ["run", "--rm", "--name", NAME, "-p", f"{port}:80", "busybox", "true"]),
        Case("create", ["create", "--name", NAME, "-p", f"{port}:80", "busybox", *LONG]),
        Case("start", ["start", NAME], setup=[["create", "--name", NAME, "-p", f"{port}:80", "busybox", *LONG]],
             retry=["start", NAME]),
        Case("rm -f", ["rm", "-f", NAME], setup=running, retry=["rm", "-f", NAME],
             ok_codes={1: "No such container"}),
        Case("stop", ["stop", NAME], setup=running, retry=["stop", NAME]),
        Case("commit", ["commit", NAME, "crash/commit:1"], setup=running, retry=["commit", NAME, "crash/commit:1"]),
        Case("load", ["load", "-i", saved], retry=["load", "-i", saved], once=make_saved),
        Case("import", ["import", tar, "crash/import:1"], retry=["import", tar, "crash/import:1"],
             once=lambda b: _small_tar(tar)),
        Case("tag", ["tag", "busybox", "crash/tag:1"], retry=["tag", "busybox", "crash/tag:1"]),
        Case("rmi", ["rmi", "crash/rmi:1"], setup=[["import", tar, "crash/rmi:1"]], retry=["rmi", "crash/rmi:1"],
             ok_codes={1: "No such image"}, once=lambda b: _small_tar(tar)),
        Case("volume create", ["volume", "create", VOLUME], retry=["volume", "create", VOLUME]),
        Case("volume first mount", _run_d(port, "-v", f"{VOLUME}:/etc"), setup=[["volume", "create", VOLUME]],
             volume=True),
        Case("exec", ["exec", NAME, "sh", "-c", "echo crash > /tmp/x"], setup=running,
             retry=["exec", NAME, "true"]),
    ]
    return {case.name: case for case in cases}


CASE_NAMES = list(_cases(0, "/nonexistent"))


class Trial:
    def __init__(self, point):
        self.point = point
        self.kills: list[str] = []
        self.damage: list[str] = []
        self.exit = None
        self.seconds = 0.0

    def as_dict(self, case: str) -> dict:
        return {"command": case, "syscall": self.point[0] if self.point else None,
                "K": self.point[1] if self.point else None, "killed": self.kills, "exit": self.exit,
                "damage": self.damage, "seconds": round(self.seconds, 2)}


def _call(b, trial: Trial, args: list[str], ok_codes: dict | None = None, timeout: float = 30):
    """Run an ordinary berth command after a crash; anything but success (or an accepted refusal)
    is damage. Returns the result or None."""
    try:
        result = b(*args, timeout=timeout)
    except subprocess.TimeoutExpired:
        trial.damage.append(f"berth {' '.join(args)}: hung for {timeout:g} s")
        return None
    err = result.stderr.strip()
    if "Traceback" in err or cc_crash(err):
        trial.damage.append(f"berth {' '.join(args)} crashed -> {result.returncode}: {err.splitlines()[-1]}")
    elif result.returncode != 0 and not (ok_codes and result.returncode in ok_codes
                                         and ok_codes[result.returncode] in err):
        trial.damage.append(f"berth {' '.join(args)} -> {result.returncode}: {err}")
    return result


def cc_crash(err: str) -> bool:
    from conftest import CRASH

    return CRASH.search(err) is not None


def _ids(b, trace) -> set[str]:
    ids = set(b.container_ids()) | set(b.seen_ids)
    if trace is not None:
        ids |= trace.ids
    return ids


def _prepare(b, case: Case, trial: Trial) -> None:
    if not b("images", "-q", "busybox:latest").stdout.strip():
        b.import_busybox(b.busybox_tar)
    for args in case.setup:
        result = b(*args)
        if result.returncode != 0:
            trial.damage.append(f"setup berth {' '.join(args)} -> {result.returncode}: {result.stderr.strip()}")


def _sweep_listed(b, trial: Trial, keep_volume: bool = False) -> None:
    """Every container, volume and image berth lists inspects and removes (the first-mount case's
    volume only inspects: the reuse run mounts it again, and must find it whole)."""
    listed = _call(b, trial, ["ps", "-a", "-q", "--no-trunc"])
    for cid in (listed.stdout.split() if listed else []):
        state = b("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", cid)
        if state.returncode != 0:
            trial.damage.append(f"ps lists {cid[:12]} but inspect -> {state.returncode}: {state.stderr.strip()}")
        if cc.frozen(cid):
            trial.damage.append(f"container {cid[:12]} frozen ({state.stdout.strip()})")
        _call(b, trial, ["rm", "-f", cid])
    volumes = _call(b, trial, ["volume", "ls", "-q"])
    for name in (volumes.stdout.split() if volumes else []):
        _call(b, trial, ["volume", "inspect", name])
        if not (keep_volume and name == VOLUME):
            _call(b, trial, ["volume", "rm", name])
    images = _call(b, trial, ["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
    for line in (images.stdout.splitlines() if images else []):
        ref, _, image_id = line.partition(" ")
        _call(b, trial, ["image", "inspect", image_id])
        if ref != "busybox:latest":
            _call(b, trial, ["rmi", "-f", ref if not ref.startswith("<none>") else image_id])


def _volume_complete(b, trial: Trial) -> None:
    """A volume first mounted on /etc holds all of the image's /etc (a half copy-up is damage:
    the volume is no longer empty, so no later mount copies again)."""
    data = os.path.join(b.root, "volumes", VOLUME, "_data")
    try:
        have = set(os.listdir(data))
    except FileNotFoundError:
        trial.damage.append(f"volume {VOLUME}: no {data} after the mount")
        return
    image = b("run", "--rm", "busybox", "ls", "-A", "/etc")
    want = set(image.stdout.split())
    if want - have:
        trial.damage.append(f"volume {VOLUME} copy-up incomplete: missing {sorted(want - have)}")


def _blobs(b, trial: Trial, notes: set) -> None:
    result = b("system", "prune", "-af", timeout=60)
    if result.returncode != 0:
        notes.add(f"berth system prune -af -> {result.returncode}: {result.stderr.strip().splitlines()[0]}")
        _call(b, trial, ["image", "prune", "-af"], timeout=60)
    remaining = cc.temp_files(b)
    # a temp file the ordinary commands left but prune collects is still reported, marked so
    trial.damage = [d + " (image prune collects it)" if d.startswith("temp file ") and d[10:].split(" (")[0]
                    not in remaining else d for d in trial.damage]
    trial.damage += [f"after prune: {item}" for item in cc.unreferenced_blobs(b)]
    trial.damage += [f"after prune: temp file {p}" for p in remaining if f"temp file {p}" not in trial.damage]


def _run_trial(b, case: Case, port: int, point, since: int, notes: set) -> tuple[Trial, object]:
    trial = Trial(point)
    started = time.monotonic()
    _prepare(b, case, trial)
    # a container that exists before the command has a supervisor: it is traced (and killed) too
    trace = cc.trace(b, case.command, inject=point, also={pid: "supervisor" for pid in cc.supervisors(b)})
    trial.exit = trace.returncode
    trial.kills = trace.kills()
    if trace.hung:
        trial.damage.append(f"berth {' '.join(case.command)} hung (killed after 60 s)")
    # the ordinary command that touches the object
    if case.retry:
        _call(b, trial, case.retry, case.ok_codes)
        if case.name == "commit":
            cid = b("inspect", "-f", "{{.Id}}", NAME).stdout.strip()
            if cid and cc.frozen(cid):
                trial.damage.append(f"container {NAME} still frozen after a commit that completed")
            _call(b, trial, ["exec", NAME, "true"], timeout=10)
    _call(b, trial, ["rm", "-f", NAME], {1: "No such container"})
    _sweep_listed(b, trial, keep_volume=case.volume)
    ids = _ids(b, trace)
    first = cc.leftovers(b, ids, trace.pids, since)
    # the same name and port again, at once
    reuse = _run_d(port, *(("-v", f"{VOLUME}:/etc") if case.volume else ()))
    if _call(b, trial, reuse) is not None:
        if case.volume:
            _volume_complete(b, trial)
        _call(b, trial, ["rm", "-f", NAME])
    if case.volume:
        _call(b, trial, ["volume", "rm", VOLUME], {1: "No such volume"})
    ids = _ids(b, trace)
    second = cc.leftovers(b, ids, trace.pids, since)
    # what the ordinary commands left, and whether the reuse (same name and port) cleared it
    trial.damage += [item + (" (still there after the reuse run)" if item in second else " (the reuse run cleared it)")
                     for item in first]
    trial.damage += [f"after the reuse run: {item}" for item in second if item not in first]
    if case.name in IMAGE_COMMANDS:
        _blobs(b, trial, notes)
    trial.damage = list(dict.fromkeys(trial.damage))
    trial.seconds = time.monotonic() - started
    return trial, trace


def _short(text: str, b) -> str:
    return text.replace(b.base, "<base>")


@pytest.mark.parametrize("case_name", CASE_NAMES)
def test_crash_injection(busybox, case_name, tmp_path):
    b = busybox
    port = _free_port()
    case = _cases(port, str(tmp_path))[case_name]
    if case.once:
        case.once(b)
    since = cc.boot_ticks()
    notes: set[str] = set()

    # one run without injection: its calls are the kill points; it must itself leave nothing
    dry, dry_trace = _run_trial(b, case, port, None, since, notes)
    assert dry_trace.returncode == 0, f"berth {' '.join(case.command)} -> {dry_trace.returncode}: {dry_trace.stderr}"
    assert not dry.damage, "without any crash:\n  " + "\n  ".join(_short(d, b) for d in dry.damage)
    points = cc.candidates(dry_trace)
    order = sorted(points, key=lambda p: (p[0], p[1]))
    chosen = cc.sample(order, _budget(), groups={p: _signature(points[p], dry_trace) for p in order})

    trials = []
    for point in chosen:
        trial, trace = _run_trial(b, case, port, point, since, notes)
        trials.append(trial)
        if trial.damage:
            trial.damage += [f"(conftest cleanup) {item}" for item in cc.reset(b, _ids(b, trace), trace.pids, since)]

    report_path = os.environ.get("BERTH_CRASH_REPORT")
    if report_path:
        with open(report_path, "a") as f:
            for trial in trials:
                f.write(json.dumps({**trial.as_dict(case_name), "damage": [_short(d, b) for d in trial.damage],
                                    "points": len(points)}) + "\n")
            f.write(json.dumps({"command": case_name, "dry_run": {f"{k[0]}#{k[1]}": [
                f"{dry_trace.roles.get(c.pid, c.pid)}:{_short(str(c), b)}" for c in calls]
                for k, calls in sorted(points.items())}, "chosen": [f"{p[0]}#{p[1]}" for p in chosen]}) + "\n")
            for note in sorted(notes):
                f.write(json.dumps({"command": case_name, "note": note}) + "\n")
    damaged = [t for t in trials if t.damage]
    lines = [f"{case_name}: {len(trials)} trials of {len(points)} kill points, {len(damaged)} left damage"]
    for trial in damaged:
        lines.append(f"- {trial.point[0]} K={trial.point[1]}: killed {'; '.join(trial.kills) or 'nothing'} "
                     f"(exit {trial.exit})")
        lines += [f"    {_short(d, b)}" for d in trial.damage]
    lines += [f"note: {n}" for n in sorted(notes)]
    print("\n".join(lines))
    if damaged or notes:
        pytest.fail("\n".join(lines), pytrace=False)


def _signature(calls, trace) -> tuple:
    """What a kill point kills: which processes, in which syscall (points alike are sampled less)."""
    return tuple(sorted({(trace.roles.get(c.pid, "?"), c.name) for c in calls if c.state_changing()}))
