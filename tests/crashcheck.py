"""Crash injection for berth commands, and the outside checker of what a killed command left.

`trace()` runs one berth command under strace, attached before the command's first instruction
of its own (a small Python stub waits on a pipe until strace holds it, so the launch's execve is
not counted and a child's execve can be injected), and with `inject=(syscall, K)` SIGKILLs every
traced process at its K-th call of that syscall (strace counts per syscall and per process: a
trial can kill the CLI and, later, the supervisor it forked). `candidates()` turns one run without
injection into the (syscall, K) pairs that hit a state-changing call in some process, and
`sample()` bounds them. `leftovers()` looks at a berth root from outside berth (its files, the
host's nftables, links, mounts, cgroups and processes) for what a removed container or image
must not leave; `reset()` takes a damaged root back to empty (processes ended by PID, checked to
be this root's)."""

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

# State-changing syscalls (rmdir, umount2, kill and pidfd_send_signal too: rm and stop change
# state by them). openat counts only when it creates (O_CREAT) or writes a freezer state (commit's
# freeze and thaw); execve only as a child's exec (nft, the monitor, the container's program).
SYSCALLS = ("rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir", "link",
            "linkat", "clone", "clone3", "mount", "umount2", "openat", "execve", "kill", "pidfd_send_signal")
CLONES = ("clone", "clone3", "fork", "vfork")

_START = re.compile(r"^(\d+) +(\w+)\((.*)$")
_RESUMED = re.compile(r"^(\d+) +<\.\.\. (\w+) resumed>(.*)$")
_RESULT = re.compile(r"\) += (-?\d+|\?)(?: .*)?$")
_KILLED = re.compile(r"^(\d+) +\+\+\+ killed by SIGKILL")
_ID = re.compile(r"/containers/([0-9a-f]{64})")

# a stub that blocks until strace has attached, then runs berth's launcher in-process
_STUB = ("import os, runpy, sys\nfd = int(sys.argv[1])\nos.read(fd, 1)\nos.close(fd)\n"
         "sys.argv = sys.argv[2:]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n")


class Call:
    """One traced syscall: its process, name, argument text, result ("?" when killed in it) and
    its invocation number within that process (strace's `when=` counter)."""

    __slots__ = ("pid", "name", "args", "result", "nth")

    def __init__(self, pid: int, name: str, args: str, nth: int):
        self.pid, self.name, self.args, self.result, self.nth = pid, name, args, None, nth

    def state_changing(self) -> bool:
        if self.name == "openat":
            return "O_CREAT" in self.args or ("O_WRONLY" in self.args and re.search(
                r"freezer\.state|cgroup\.freeze", self.args) is not None)
        return True  # an mkdir that finds EEXIST too: a point between other processes' changes

    def path(self) -> str:
        found = re.findall(r'"([^"]*)"', self.args)
        return " -> ".join(found[:2]) if found else self.args[:60]

    def __str__(self) -> str:
        return f"{self.name}#{self.nth}({self.path()})"


class Trace:
    """What one traced command did: exit status, output, the calls in order, who was killed where,
    the role of each process, and the container IDs its paths name."""

    def __init__(self):
        self.returncode = None
        self.stdout = self.stderr = ""
        self.calls: list[Call] = []
        self.killed: dict[int, Call | None] = {}
        self.roles: dict[int, str] = {}
        self.ids: set[str] = set()
        self.pids: set[int] = set()
        self.hung = False
        self.seconds = 0.0
        self.main = 0

    def kills(self) -> list[str]:
        return [f"{self.roles.get(pid, pid)} " + (f"at {call}" if call else "(SIGKILL from elsewhere)")
                for pid, call in sorted(self.killed.items())]


def _shebang(binary: str) -> list[str]:
    with open(binary, "rb") as f:
        first = f.readline().decode().strip()
    if not first.startswith("#!") or "python" not in first:
        raise RuntimeError(f"{binary} is not a Python launcher ({first!r}): the crash driver runs it in-process")
    return first[2:].split()


def _tracer_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _quiet(path: str, proc: subprocess.Popen, quiet: float, limit: float) -> None:
    """Wait until strace exits or its log has not grown for `quiet` seconds (at most `limit`)."""
    deadline = time.monotonic() + limit
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline and proc.poll() is None:
        now_size = os.path.getsize(path)
        if now_size != size:
            size, since = now_size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.02)


def supervisors(b) -> list[int]:
    """The pids of this root's running supervisors (berth.monitor processes naming its root:
    monitor.lean.exec_python's command line is the boot code, the plan's fd, root and id)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
                if "berth.monitor" in cmdline and b.root in cmdline.split("\0"):
                    found.append(int(name))
    return found


def trace(b, args: list[str], inject: tuple[str, int] | None = None, timeout: float = 60,
          syscalls: tuple[str, ...] = SYSCALLS, also: dict[int, str] | None = None) -> Trace:
    """Run `berth args` of root `b` under strace -f (attached before berth's first own syscall),
    SIGKILLing every process at its K-th call of `inject` = (syscall, K), if given. `also`:
    running processes ({pid: role}, e.g. the container's supervisor) traced and injected too."""
    result = Trace()
    work = tempfile.mkdtemp(prefix="crash-", dir=b.base)
    log = os.path.join(work, "strace.log")
    out, err = open(os.path.join(work, "out"), "w+"), open(os.path.join(work, "err"), "w+")
    go_r, go_w = os.pipe()
    interpreter = _shebang(b.binary)
    started = time.monotonic()
    proc = subprocess.Popen([*interpreter, "-c", _STUB, str(go_r), *b.cmd(*args)], pass_fds=(go_r,),
                            stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
    os.close(go_r)
    command = ["strace", "-f", "-q", "-s", "160", "-o", log, "-e", "trace=" + ",".join(syscalls)]
    if inject is not None:
        command += ["-e", f"inject={inject[0]}:signal=KILL:when={inject[1]}"]
    also = also or {}
    targets = [proc.pid, *also]
    tracer = subprocess.Popen([*command, *(f"-p{pid}" for pid in targets)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while any(_tracer_of(pid) != tracer.pid for pid in targets if os.path.exists(f"/proc/{pid}")):
            if time.monotonic() > deadline or tracer.poll() is not None:
                raise RuntimeError(f"strace did not attach: {tracer.stderr.read().decode(errors='replace')}")
            time.sleep(0.002)
        os.write(go_w, b"x")
        try:
            result.returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            result.hung = True
            os.kill(proc.pid, signal.SIGKILL)  # the berth we started
            result.returncode = proc.wait()
        # the processes it forked (supervisor, container) are still traced: let them reach a rest,
        # so that a kill aimed at them lands, then detach from them
        _quiet(log, tracer, quiet=0.15, limit=3.0)
    finally:
        os.close(go_w)
        if tracer.poll() is None:
            tracer.send_signal(signal.SIGINT)  # strace detaches from every tracee and exits
            try:
                tracer.wait(timeout=10)
            except subprocess.TimeoutExpired:
                tracer.kill()
                tracer.wait()
        tracer.stderr.close()
    result.seconds = time.monotonic() - started
    out.seek(0)
    err.seek(0)
    result.stdout, result.stderr = out.read(), err.read()
    out.close()
    err.close()
    result.main = proc.pid
    _parse(log, result, also)
    shutil.rmtree(work, ignore_errors=True)
    return result


def _parse(log: str, result: Trace, labels: dict[int, str]) -> None:
    counts: dict[tuple[int, str], int] = {}
    pending: dict[int, Call] = {}
    last: dict[int, Call] = {}
    parent: dict[int, tuple[int, bool]] = {}
    execs: dict[int, str] = {}
    with open(log, errors="replace") as f:
        lines = f.read().splitlines()
    for line in lines:
        if m := _KILLED.match(line):
            pid = int(m.group(1))
            call = last.get(pid)
            # killed inside a traced call (strace shows "= ?" or never resumes it): the injection
            result.killed[pid] = call if call is not None and call.result in ("?", None) else None
            continue
        tail = None
        if m := _START.match(line):
            pid, name, rest = int(m.group(1)), m.group(2), m.group(3)
            counts[(pid, name)] = counts.get((pid, name), 0) + 1
            call = Call(pid, name, rest, counts[(pid, name)])
            result.calls.append(call)
            result.pids.add(pid)
            last[pid] = call
            if rest.endswith("<unfinished ...>"):
                pending[pid] = call
            else:
                tail = rest
        elif m := _RESUMED.match(line):
            pid = int(m.group(1))
            call = pending.pop(pid, None)
            if call is None:
                continue
            tail = m.group(3)
        else:
            continue
        if tail is not None:
            r = _RESULT.search(tail)
            call.result = r.group(1) if r else tail[-20:]
            if call.name in CLONES and call.result.isdigit():
                parent[int(call.result)] = (call.pid, "CLONE_THREAD" in call.args)
            if call.name == "execve" and not call.result.startswith("-"):
                exe = re.findall(r'"([^"]*)"', call.args)
                label = os.path.basename(exe[0]) if exe else "?"
                if "berth.monitor" in call.args:
                    label = "monitor"
                elif len(exe) > 1 and label.startswith("python"):
                    label = "python"
                execs[call.pid] = label
        result.ids.update(_ID.findall(line))
    if result.calls:
        result.main = result.main or result.calls[0].pid
    for pid in result.pids | set(result.killed):
        result.roles[pid] = _role(pid, result.main, parent, execs, labels)


def _role(pid: int, main: int, parent: dict, execs: dict, labels: dict) -> str:
    if pid == main:
        name = "cli"
    elif pid in labels:
        name = labels[pid]
    elif pid in parent:
        up, thread = parent[pid]
        name = _role(up, main, parent, execs, labels) + ("/thread" if thread else "/child")
    else:
        name = f"pid{pid}"
    return name + (f"[{execs[pid]}]" if pid in execs else "")


def candidates(dry: Trace) -> dict[tuple[str, int], list[Call]]:
    """{(syscall, K): the calls strace's `when=K` would kill} for every K at which some process
    makes a state-changing call (an execve only in a child: the stub does not exec)."""
    found: dict[tuple[str, int], list[Call]] = {}
    for call in dry.calls:
        found.setdefault((call.name, call.nth), []).append(call)
    return {key: calls for key, calls in found.items() if any(c.state_changing() for c in calls)}


def sample(points: list[tuple[str, int]], budget: int, groups: dict | None = None) -> list[tuple[str, int]]:
    """At most `budget` of `points` (kept in their order): first the first point of each group
    (points that kill the same processes in the same syscall), then the last of each, then points
    spread evenly over the rest. `budget` 0 keeps all."""
    if budget <= 0 or len(points) <= budget:
        return list(points)
    groups = groups or {point: point[0] for point in points}
    by_group: dict = {}
    for point in points:
        by_group.setdefault(groups[point], []).append(point)
    ranked = [g[0] for g in by_group.values()] + [g[-1] for g in by_group.values()]
    rest = [p for p in points if p not in set(ranked)]
    step = max(len(rest) / max(budget, 1), 1)
    ranked += [rest[int(i * step)] for i in range(int(len(rest) / step))]
    keep = []
    for point in ranked:
        if point not in keep:
            keep.append(point)
    if len(keep) > budget:
        # more kinds than room: every kind's first point, spread over the kinds
        firsts = keep[:len(by_group)]
        if len(firsts) > budget:
            spread = len(firsts) / budget
            keep = [firsts[int(i * spread)] for i in range(budget)]
        else:
            keep = keep[:budget]
    chosen = set(keep)
    return [p for p in points if p in chosen]


# -- the outside checker ----------------------------------------------------------------------

TEMP = re.compile(r"(\.tmp|^\.draft-|^\.new-|^\.removing-)")


def _names(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []


def temp_files(b) -> list[str]:
    """Temp and trash names anywhere in the root's and run root's own files (not inside container
    filesystems, layers or volume data, which belong to their users), and anything in image/tmp."""
    skip_dirs = {"upper", "work", "merged", "_data", "rootfs"}
    found = []
    for top in (b.root, b.run_root):
        for directory, dirs, files in os.walk(top):
            rel = os.path.relpath(directory, top)
            if rel.startswith("image/layers/") or rel == "image/layers":
                dirs[:] = [d for d in dirs if TEMP.search(d)] if rel == "image/layers" else []
            dirs[:] = [d for d in dirs if d not in skip_dirs or TEMP.search(d)]
            for name in dirs + files:
                if TEMP.search(name):
                    found.append(os.path.join(directory, name))
    found += [os.path.join(b.root, "image", "tmp", n) for n in _names(os.path.join(b.root, "image", "tmp"))]
    return sorted(set(found))


def nft_elements(b) -> list[str]:
    """The elements of berth's published-port maps and link set for this root (none once no
    container publishes)."""
    from berth.network.nft import table_name

    table = table_name(b.root)
    found = []
    for family, kind, name in (("ip", "map", "publish_any"), ("ip", "map", "publish_addr"),
                               ("bridge", "set", "links")):
        run = subprocess.run(["nft", "-j", "list", kind, family, table, name], capture_output=True, text=True)
        if run.returncode != 0:
            continue  # no table yet (or any more)
        for item in json.loads(run.stdout).get("nftables", []):
            body = item.get(kind)
            if body and body.get("elem"):
                found += [f"{family} {table} {name}: {json.dumps(e, separators=(',', ':'))}" for e in body["elem"]]
    return found


def _cgroup_dirs(container_id: str) -> list[str]:
    found = []
    for hierarchy in _names("/sys/fs/cgroup"):
        for path in (f"/sys/fs/cgroup/{hierarchy}/berth/{container_id}", f"/sys/fs/cgroup/berth/{container_id}"):
            if os.path.isdir(path):
                found.append(path)
    return sorted(set(found))


def frozen(container_id: str) -> bool:
    for path in _cgroup_dirs(container_id):
        for name, value in (("freezer.state", "FROZEN"), ("freezer.state", "FREEZING"), ("cgroup.freeze", "1")):
            with contextlib.suppress(OSError), open(os.path.join(path, name)) as f:
                if f.read().strip() == value:
                    return True
    return False


def _starttime(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def boot_ticks() -> int:
    """Now, in the clock ticks /proc/PID/stat counts start times in."""
    with open("/proc/uptime") as f:
        return int(float(f.read().split()[0]) * os.sysconf("SC_CLK_TCK"))


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def _sees(pid: int, base: str) -> bool:
    """Does process `pid` have a mount of this root's base (a container of this root)?"""
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            return base + "/" in f.read()
    except OSError:
        return False


def processes_of(b, ids: set[str], traced: set[int], since: int) -> list[tuple[int, str]]:
    """Live processes of this root: in a cgroup of one of `ids`, naming the root's base in their
    command line (supervisors, a CLI left hanging), or traced by a trial (`traced`, started at
    `since` or later) and seeing the root's mounts (a container process outside any cgroup)."""
    found = {}
    for cid in ids:
        for path in _cgroup_dirs(cid):
            with contextlib.suppress(OSError), open(os.path.join(path, "cgroup.procs")) as f:
                for pid in f.read().split():
                    found[int(pid)] = f"in cgroup {path}"
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if b.base + "/" in cmdline and "strace" not in cmdline.split(" ", 1)[0]:
            found.setdefault(pid, cmdline[:100])
        elif pid in traced and (_starttime(pid) or 0) >= since and _sees(pid, b.base):
            found.setdefault(pid, "a trial's process: " + cmdline[:80])
    return sorted((pid, what) for pid, what in found.items() if _state(pid) not in ("Z", "X", "gone"))


def lingering(b, ids: set[str], traced: set[int], since: int, wait: float = 2.0) -> list[tuple[int, str]]:
    """processes_of, after giving exiting processes `wait` seconds to go."""
    deadline = time.monotonic() + wait
    while (found := processes_of(b, ids, traced, since)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _image_references(b) -> tuple[set[str], set[str]]:
    """Blobs (hex) and layer chain IDs (hex) that the tags and digests in index.json reach."""
    directory = os.path.join(b.root, "image")
    blobs, chains = set(), set()

    def blob(digest: str) -> dict | None:
        hexdigest = digest.partition(":")[2]
        blobs.add(hexdigest)
        try:
            with open(os.path.join(directory, "blobs", "sha256", hexdigest)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    try:
        with open(os.path.join(directory, "index.json")) as f:
            entries = json.load(f).get("manifests", [])
    except (OSError, ValueError):
        entries = []
    while entries:
        entry = entries.pop()
        document = blob(entry["digest"])
        if document is None:
            continue
        entries += document.get("manifests", [])
        if "config" in document:
            config = blob(document["config"]["digest"]) or {}
            for layer in document.get("layers", []):
                blobs.add(layer["digest"].partition(":")[2])
            chain = None
            for diff_id in (config.get("rootfs") or {}).get("diff_ids") or []:
                if chain is not None:  # the OCI chain ID: sha256 of "<parent chain> <diff id>"
                    diff_id = "sha256:" + hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest()
                chain = diff_id
                chains.add(chain.partition(":")[2])
    return blobs, chains


def unreferenced_blobs(b) -> list[str]:
    """Blobs and unpacked layers no image of index.json reaches (what prune must have collected)."""
    blobs, chains = _image_references(b)
    directory = os.path.join(b.root, "image")
    found = [f"blob {n}" for n in _names(os.path.join(directory, "blobs", "sha256")) if n not in blobs]
    for name in _names(os.path.join(directory, "layers")):
        chain = name.removesuffix(".json").removesuffix(".lock")
        if chain not in chains:
            found.append(f"layer {name}")
    return found


def leftovers(b, ids: set[str], traced: set[int], since: int, containers_gone: bool = True) -> list[str]:
    """What of this root remains on disk and on the host that must not once every container is
    removed (`containers_gone`): names, container dirs, leases, port reservations, nft elements,
    veths, mounts, cgroups, frozen cgroups, processes, temp files."""
    found = []
    if containers_gone:
        for label, directory in (("name", os.path.join(b.root, "names")),
                                 ("container dir", os.path.join(b.root, "containers")),
                                 ("run dir", os.path.join(b.run_root, "containers")),
                                 ("lease", os.path.join(b.root, "network", "leases")),
                                 ("port reservation", os.path.join(b.run_root, "network", "ports"))):
            for name in _names(directory):
                if label == "port reservation" and (name.startswith(".last-") or name in ("lock", ".lock")):
                    continue
                if label == "name" and name in ("lock", ".lock"):
                    continue
                detail = ""
                with contextlib.suppress(OSError, UnicodeDecodeError):
                    if os.path.isfile(os.path.join(directory, name)):
                        with open(os.path.join(directory, name)) as f:
                            detail = " = " + repr(f.read(80).strip())
                found.append(f"{label} {os.path.join(directory, name)}{detail}")
        found += [f"nft element {e}" for e in nft_elements(b)]
        ports = _names(f"/sys/class/net/{b.bridge}/brif")
        deadline = time.monotonic() + 2  # the kernel deletes a veth a moment after its netns dies
        while ports and time.monotonic() < deadline:
            time.sleep(0.02)
            ports = _names(f"/sys/class/net/{b.bridge}/brif")
        found += [f"veth {p} on bridge {b.bridge}" for p in ports]
        with open("/proc/self/mountinfo") as f:
            found += [f"mount {line.split()[4]}" for line in f if f" {b.base}/" in line]
        for cid in sorted(ids):
            found += [f"cgroup {path}" + (" (FROZEN)" if frozen(cid) else "") for path in _cgroup_dirs(cid)]
        found += [f"process {pid}: {what}" for pid, what in lingering(b, ids, traced, since)]
    found += [f"temp file {p}" for p in temp_files(b)]
    return found


def reset(b, ids: set[str], traced: set[int], since: int) -> list[str]:
    """Take a damaged root back to empty: end its processes (by PID, each checked to be this
    root's), unmount, remove its bridge and tables, and delete both roots. What conftest's own
    removal found is returned (it is reported with the damage)."""
    from conftest import berth_cgroups, remove_and_check

    for pid, _ in processes_of(b, ids, traced, since):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for cid in ids:  # a frozen cgroup keeps its processes from dying
        for path in _cgroup_dirs(cid):
            for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
                with contextlib.suppress(OSError), open(os.path.join(path, name), "w") as f:
                    f.write(value)
    b.seen_ids.update(ids)
    found = remove_and_check(b, berth_cgroups())
    for cid in ids:
        for path in _cgroup_dirs(cid):
            with contextlib.suppress(OSError):
                os.rmdir(path)
    with open("/proc/self/mountinfo") as f:
        for line in reversed(f.read().splitlines()):
            if f" {b.base}/" in line:
                subprocess.run(["umount", "-l", line.split()[4]], check=False)
    for directory in (b.root, b.run_root):
        shutil.rmtree(directory, ignore_errors=True)
    return found
