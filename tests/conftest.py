"""Shared fixtures: a private berth root per test, the busybox rootfs tar, and cleanup
that leaves no container, mount or cgroup behind even when a test fails. After the cleanup
the host is checked from the outside for anything of the test's root that remains (a leak
fails the test). Also: `wait_for` (poll a condition with a deadline, never a bare sleep),
`require_peer` (an interop peer that must be there), and a hook that fails the run when a
test is skipped for any reason but another architecture or cgroup mode."""

import contextlib
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The only reasons a test may skip: it checks what another architecture or cgroup mode has.
# Such skips say so by starting their reason with one of these.
ALLOWED_SKIP_PREFIXES = ("architecture:", "cgroup mode:")


def berth_binary() -> str:
    path = os.environ.get("BERTH_BIN") or shutil.which("berth")
    if not path:
        pytest.exit("berth is not installed: run scripts/install (or set BERTH_BIN)", 2)
    return path


def runtime_binary() -> str:
    path = os.environ.get("BERTH_RUNTIME_BIN") or shutil.which("berth-runtime")
    if not path:
        pytest.exit("berth-runtime is not installed: run scripts/install", 2)
    return path


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll until `predicate()` is truthy and return its value; fail the test after `timeout`
    seconds. A bounded wait on a condition, not a timing check: a loaded machine only waits longer."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def berth_processes(base: str, amid_exec: bool = True) -> list[str]:
    """berth processes (CLIs, supervisors) working on the root under `base`, as "pid cmdline";
    with `amid_exec`, any process of berth's interpreter amid an exec too (to wait for, never
    to kill: it may be another test's): its command line reads empty until the new program's
    is set up, and a supervisor execs its lean monitor and back around every run, so it is
    never taken for gone then. (A process whose exe cannot be read has no memory left: it is
    exiting, not amid an exec.)"""
    interpreter = os.path.realpath(sys.executable)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            if not cmdline and amid_exec:
                if os.readlink(f"/proc/{entry}/exe") != interpreter:
                    continue
            elif base.encode() not in cmdline:
                continue
        except OSError:  # ended meanwhile, or exiting
            continue
        found.append(entry + " " + cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def reap_adopted_container_processes() -> None:
    """Kill and reap this test process's children that live in a container's pid namespace.
    An in-process engine call made us a child subreaper (engine.start, exec), so a detached
    exec's process is re-parented to us when its parent ends; once killed it would stay our
    zombie, and its container's pid 1 could never finish exiting (the kernel waits for every
    process of the namespace to be reaped)."""
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if fields["PPid"].strip() != me or len(fields["NSpid"].split()) < 2:
                continue
            if not fields["State"].strip().startswith("Z"):
                os.kill(int(entry), 9)
            os.waitpid(int(entry), 0)
        except (OSError, KeyError):  # ended meanwhile, or not ours after all
            continue


def processes_named(comm: str, needle: str) -> list[int]:
    """Live processes (no zombies) whose kernel name is `comm` with `needle` in their command
    line (berth's helper processes: berth-dns names its run-root, berth-health its container)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != comm:
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle.encode() not in f.read():
                    continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] == "Z":
                    continue
        except OSError:  # ended meanwhile
            continue
        found.append(int(entry))
    return found


NOBODY = 65534


def as_nobody(action) -> str:
    """Run `action()` in a forked child as uid/gid nobody; what it returns (or the error it
    raised) as text."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            try:
                result = f"ok: {action()}"
            except OSError as err:
                result = f"{type(err).__name__}: {err.strerror}"
            os.write(write_fd, result.encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 4096):
        data += chunk
    os.close(read_fd)
    os.waitpid(pid, 0)
    return data.decode()


def wchan(pid: int) -> str:
    """Where in the kernel process `pid` sleeps ("" if it runs or is gone): a test can wait
    until a command blocks (say in poll or nanosleep), instead of sleeping and hoping it did."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def listening(pid: int, port: int) -> bool:
    """Does the network namespace of process `pid` have a TCP socket listening on `port`? (A
    test waits for a server in a container this way, never by sleeping before it connects.)"""
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                return True
    return False


def require_peer(tool: str) -> str:
    """The path of interop peer `tool` (docker, podman, skopeo, umoci, a compressor...). A missing
    peer fails the test: scripts/test-peers installs and starts every peer Debian ships, so a
    comparison that silently skipped would hide a regression."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: run scripts/test-peers (as root) to install the test peers",
                    pytrace=False)
    if tool == "docker":
        probe = subprocess.run([path, "version", "--format", "{{.Server.Version}}"], capture_output=True,
                               text=True, timeout=30)
        if probe.returncode != 0:
            pytest.fail(f"no docker daemon answers ({probe.stderr.strip()}): run scripts/test-peers (as root) "
                        "to start dockerd", pytrace=False)
    return path


def free_test_subnet() -> str:
    """A /24 in 10.200-254.x.0 that no route of the host touches: this test's bridge subnet."""
    import ipaddress
    import random

    from berth.network.ipam import host_routes

    routes = host_routes()
    while True:
        subnet = ipaddress.ip_network(f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24")
        if not any(subnet.overlaps(route) for route in routes):
            return str(subnet)


# A pull a test did not mean (a typo, an image removed by a race) must not leave this machine:
# berth's HTTP goes through a proxy on a loopback port where nothing listens, except for the
# loopback registries the tests start. A test that sets these variables itself wins.
NO_REMOTE_REGISTRY = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
                      "NO_PROXY": "127.0.0.1,localhost"}


class Berth:
    """Runs the real `berth` command against this test's own --root/--run-root and its own
    engine settings (daemon.json): its own bridge name and subnet, so tests never share one."""

    def __init__(self, base: str):
        self.base = base
        self.root = os.path.join(base, "root")
        self.run_root = os.path.join(base, "run")
        self.config_file = os.path.join(base, "daemon.json")
        self.binary = berth_binary()
        self.bridge = "bt" + os.urandom(4).hex()
        self.subnet = free_test_subnet()
        self.seen_ids: set[str] = set()  # every container seen after a command: its cgroups are checked
        self.configure()

    def configure(self, **settings) -> None:
        """Rewrite this berth's daemon.json: its bridge and subnet plus `settings` (daemon.json keys)."""
        import json

        gateway = self.subnet.rsplit(".", 1)[0] + ".1/24"
        values = {"default-bridge": self.bridge, "bip": gateway, **settings}
        with open(self.config_file, "w") as f:
            json.dump({k: v for k, v in values.items() if v is not None}, f)

    def cmd(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.root, "--run-root", self.run_root, "--config-file", self.config_file,
                *args]

    def teardown_network(self) -> None:
        """Remove the bridge, nftables tables and firewall exception berth made for this root."""
        from berth.network import bridge

        made = bridge.load(self.root)
        if made is not None:
            bridge.remove(self.root, made)

    def __call__(self, *args: str, input: bytes | str | None = None, timeout: float = 60,
                 env: dict | None = None) -> subprocess.CompletedProcess:
        text = not isinstance(input, bytes)
        env = {**NO_REMOTE_REGISTRY, **(os.environ if env is None else env)}
        try:
            return subprocess.run(self.cmd(*args), input=input, capture_output=True, text=text, timeout=timeout,
                                  env=env, stdin=subprocess.DEVNULL if input is None else None)
        finally:
            self.seen_ids.update(self.container_ids())

    def ok(self, *args: str, **kw) -> str:
        result = self(*args, **kw)
        assert result.returncode == 0, f"berth {' '.join(args)} -> {result.returncode}\n{result.stderr}"
        return result.stdout

    def fails(self, code: int, *args: str, says: str | tuple = (), **kw) -> str:
        """Run berth, expecting it to exit with `code` (docker's: 125 run/create, 1 elsewhere,
        126/127 cannot invoke/not found) and its stderr to hold each of `says`, no traceback.
        Its stderr."""
        result = self(*args, **kw)
        return refused(result, code, says, f"berth {' '.join(args)}")

    def container_ids(self) -> list[str]:
        try:
            return [n for n in os.listdir(os.path.join(self.root, "containers")) if len(n) == 64]
        except FileNotFoundError:
            return []

    def import_busybox(self, tar: str, name: str = "busybox:latest", *changes: str) -> str:
        args = ["import"]
        for change in changes or ('CMD ["sh"]',):
            args += ["-c", change]
        return self.ok(*args, tar, name).strip()


# berth's last resort for an unexpected exception: "Error: SomeError: ..." (exit 125, no traceback)
CRASH = re.compile(r"Error: [A-Z]\w*(Error|Exception)\b")


def refused(result: subprocess.CompletedProcess, code: int, says: str | tuple = (), what: str = "") -> str:
    """Check that a finished command failed the expected way: exit `code`, each of `says` in its
    stderr, and no traceback nor berth's "Error: SomeError: ..." of an unexpected exception (a
    crash must not pass for the refusal). Its stderr as text."""
    err = result.stderr if isinstance(result.stderr, str) else (result.stderr or b"").decode(errors="replace")
    if not what:
        what = result.args if isinstance(result.args, str) else " ".join(map(str, result.args))
    assert "Traceback" not in err and not CRASH.search(err), f"{what} crashed:\n{err}"
    assert result.returncode == code, f"{what} -> {result.returncode}, wanted {code}\n{err}"
    for words in (says,) if isinstance(says, str) else says:
        assert words in err, f"{what}: {words!r} not in its stderr:\n{err}"
    return err


def cgroup_dirs(container_id: str) -> list[str]:
    found = []
    base = "/sys/fs/cgroup"
    for hierarchy in os.listdir(base):
        for parent in ("berth", "berth-runtime"):
            path = os.path.join(base, hierarchy, parent, container_id)
            if os.path.isdir(path):
                found.append(path)
    if os.path.exists(os.path.join(base, "cgroup.controllers")):
        path = os.path.join(base, "berth", container_id)
        if os.path.isdir(path):
            found.append(path)
    return found


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if f" {path}" in line]


# -- what a berth root leaves on the host, seen from outside berth ----------------------------

def berth_cgroups() -> set[str]:
    """Every cgroup directory under a `berth/` parent (v1 hierarchies, hybrid's unified, pure v2)."""
    found = set()
    for parent in glob.glob("/sys/fs/cgroup/*/berth") + glob.glob("/sys/fs/cgroup/berth"):
        try:
            found.update(os.path.join(parent, name) for name in os.listdir(parent)
                         if os.path.isdir(os.path.join(parent, name)))
        except FileNotFoundError:
            pass
    return found


def _procs_of_root(cgroup: str, base: str) -> list[int]:
    """The processes in `cgroup` whose mount namespace shows a path under `base` (the container's
    overlay names its upper dir in this test's root): a cgroup that holds one is this root's."""
    try:
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            pids = [int(p) for p in f.read().split()]
    except OSError:
        return []
    ours = []
    for pid in pids:
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/mountinfo") as f:
                if base + os.sep in f.read():
                    ours.append(pid)
    return ours


def _ids_under(directory: str) -> set[str]:
    try:
        return {n for n in os.listdir(directory) if len(n) == 64}
    except FileNotFoundError:
        return set()


def _ids_in_journal(root: str) -> set[str]:
    """Every container ID the root's events journal names: those of `run --rm` containers too,
    which leave no directory to find them by."""
    import json

    ids = set()
    for name in ("journal.1", "journal"):
        try:
            with open(os.path.join(root, "events", name)) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            with contextlib.suppress(ValueError, AttributeError, KeyError):
                event = json.loads(line)
                if event["Type"] == "container" and len(event["Actor"]["ID"]) == 64:
                    ids.add(event["Actor"]["ID"])
    return ids


def _veths_of_run_root(run_root: str) -> set[str]:
    """The host veth names berth recorded for this root's running containers."""
    import json

    from berth.network.bridge import veth_name

    names = set()
    for path in glob.glob(os.path.join(run_root, "containers", "*", "network.json*")):
        try:
            with open(path) as f:
                endpoint = json.load(f).get("endpoint")
        except (OSError, ValueError):
            continue
        if endpoint:
            names.add(veth_name(endpoint))
    return names


def _leases_of_this_boot(directory: str) -> list[str]:
    """The lease files (and drafts) in `directory` taken during this boot: a lease of an earlier
    boot is void (its container and bridge died with the host) and stays until reclaimed."""
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    found = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
        with contextlib.suppress(OSError), open(os.path.join(directory, name)) as f:
            if f.read().partition("\n")[2].strip() in (boot, ""):
                found.append(name)
    return found


def _ports_of(bridge_name: str) -> list[str]:
    try:
        return sorted(os.listdir(f"/sys/class/net/{bridge_name}/brif"))
    except FileNotFoundError:
        return []


def _delete_link(name: str) -> None:
    subprocess.run(["ip", "link", "delete", name], capture_output=True, check=False)


def _tables_left(table: str, leaks: list[str]) -> str:
    """Report and delete nftables table `table` (families ip and bridge) if it is still there;
    the host's whole ruleset as it was."""
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    for family in ("ip", "bridge"):
        if f"table {family} {table} " in ruleset:
            leaks.append(f"nftables table left: {family} {table}")
            subprocess.run(["nft", "delete", "table", family, table], capture_output=True, check=False)
    return ruleset


def _user_networks(root: str) -> list[dict]:
    """The user-defined networks' records of a root, read from outside berth."""
    import json

    found = []
    for path in glob.glob(os.path.join(root, "networks", "*", "network.json")):
        with contextlib.suppress(OSError, ValueError):
            with open(path) as f:
                found.append(json.load(f))
    return found


def _remove_user_networks(b: Berth) -> list[str]:
    """Every user-defined network of `b`'s root removed with `berth network rm` (its containers
    are gone by now), then looked for from outside: leases, bridges, nftables, FORWARD exception."""
    from berth.network.nft import table_name

    leaks = []
    networks = _user_networks(b.root)
    for network in networks:
        leases = _leases_of_this_boot(os.path.join(b.root, "networks", network["Id"], "leases"))
        if leases:
            leaks.append(f"IPAM leases left on network {network['Name']}: {leases}")
        result = b("network", "rm", network["Id"])
        if result.returncode != 0:
            leaks.append(f"berth network rm {network['Name']} -> {result.returncode}: {result.stderr.strip()}")
    for network in networks:
        name = network["Berth"]["bridge"]
        if os.path.exists(f"/sys/class/net/{name}"):
            leaks.append(f"bridge of network {network['Name']} left: {name}")
            _delete_link(name)
    table = table_name(b.root) + "_net"
    ruleset = _tables_left(table, leaks)
    if f'"berth:{table}:' in ruleset:
        leaks.append(f"firewall exception berth:{table}:... left in table ip filter")
    return leaks


@pytest.fixture(autouse=True)
def _not_a_subreaper():
    """In-process engine calls (engine.start, exec) make the test process a child subreaper, and it
    would stay one for every later test: a process a later test's runtime leaves behind in a
    container (a detached exec) would become our zombie instead of init's, and that container's
    pid 1 could never finish exiting. Each test ends as an ordinary parent again."""
    yield
    from berth.runtime import syscalls

    syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 0)


def remove_and_check(b: Berth, cgroups_before: set[str]) -> list[str]:
    """Remove everything of `b`'s root with berth's own commands, then look from outside berth
    (mountinfo, /sys/class/net, nftables, cgroupfs, lease files) for what remains; remove that
    too, and return what was found (each a line of the failure message)."""
    reap_adopted_container_processes()
    from berth.network import bridge as bridges
    from berth.network.nft import table_name

    leaks = []
    ids = b.seen_ids | _ids_under(os.path.join(b.root, "containers")) | \
        _ids_under(os.path.join(b.run_root, "containers")) | _ids_in_journal(b.root)
    veths = _veths_of_run_root(b.run_root)
    made = bridges.load(b.root) if os.path.isdir(b.root) else None
    bridge_names = {b.bridge} | ({made.name} if made is not None and made.created else set())

    for container_id in b.container_ids():
        result = b("rm", "-f", container_id)
        if result.returncode != 0 and "No such container" not in result.stderr:
            leaks.append(f"berth rm -f {container_id[:12]} -> {result.returncode}: {result.stderr.strip()}")
    for directory in (os.path.join(b.root, "containers"), os.path.join(b.run_root, "containers")):
        with contextlib.suppress(FileNotFoundError):
            if os.listdir(directory):
                leaks.append(f"left in {directory} after rm -f: {sorted(n[:24] for n in os.listdir(directory))}")

    # cgroups: this root's containers' (by ID: seen, or named in its events journal), and any made
    # during the test that holds a process of this root; other roots' containers, of tests running
    # at the same time, are never touched.
    suspects = {path for container_id in ids for path in cgroup_dirs(container_id) if "/berth-runtime/" not in path}
    suspects.update(path for path in berth_cgroups() - cgroups_before if _procs_of_root(path, b.base))
    for path in sorted(suspects):
        leaks.append(f"cgroup left: {path}")
        for pid in _procs_of_root(path, b.base):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        with contextlib.suppress(OSError):
            os.rmdir(path)

    for name in bridge_names:
        # The kernel deletes a veth when its container's network namespace dies, a moment after
        # the last process (berth leaves that to it): wait for that, then what remains is a leak.
        ports = _ports_of(name)
        deadline = time.monotonic() + 10
        while ports and time.monotonic() < deadline:
            time.sleep(0.02)
            ports = _ports_of(name)
        if ports:
            leaks.append(f"host veths still on bridge {name}: {ports}")
            veths.update(ports)

    leases = _leases_of_this_boot(os.path.join(bridges.directory(b.root), "leases"))
    if leases:
        leaks.append(f"IPAM leases left: {leases}")
    leaks += _remove_user_networks(b)

    mounts = mounts_under(b.base)
    if mounts:
        leaks.append("mounts left: " + ", ".join(line.split()[4] for line in mounts))
        for line in reversed(mounts):
            subprocess.run(["umount", "-l", line.split()[4]], check=False)

    try:
        b.teardown_network()
    except Exception as err:  # noqa: BLE001 - a failed removal is a finding, and the cleanup goes on
        leaks.append(f"removing the bridge and tables failed: {err!r}")

    # after berth's own removal: the bridge device, its tables and the FORWARD exception
    for name in sorted(veths | {n for n in bridge_names if made is not None and made.created}):
        if os.path.exists(f"/sys/class/net/{name}"):
            leaks.append(f"network device left: {name}")
            _delete_link(name)
    table = table_name(b.root)
    ruleset = _tables_left(table, leaks)
    if f'"berth:{table}"' in ruleset:
        leaks.append(f"firewall exception berth:{table} left in table ip filter")
    return leaks


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("busybox") / "busybox.tar")
    with open(path, "wb") as out:
        subprocess.run([os.path.join(REPO, "scripts", "make-busybox-rootfs")], stdout=out, check=True)
    return path


@contextlib.contextmanager
def private_berth(busybox_tar: str):
    """A Berth with its own empty root, and everything it made removed afterwards; what berth's
    own removal left behind fails the test (after it is cleaned up too)."""
    base = tempfile.mkdtemp(prefix="berth-test-")
    b = Berth(base)
    b.busybox_tar = busybox_tar
    cgroups_before = berth_cgroups()
    leaks = []
    try:
        yield b
    finally:
        try:
            leaks = remove_and_check(b, cgroups_before)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    if leaks:
        pytest.fail(f"berth left things of root {b.root} behind:\n  " + "\n  ".join(leaks), pytrace=False)


@pytest.fixture
def berth(busybox_tar):
    with private_berth(busybox_tar) as b:
        yield b


@pytest.fixture
def fresh(busybox_tar):
    """A second, empty berth root (to load into, to compare with)."""
    with private_berth(busybox_tar) as b:
        yield b


@pytest.fixture
def busybox(berth) -> "Berth":
    """A berth root that already holds busybox:latest."""
    berth.import_busybox(berth.busybox_tar)
    return berth


class ApiService:
    """`berth system service` of a test's own berth, on a private unix socket: what the Engine
    API's real clients (docker CLI, docker-py, docker-compose, testcontainers) talk to."""

    DOCKER_28 = "/usr/local/bin/docker"  # the docker CLI this kind of machine ships
    DOCKER_20 = "/usr/bin/docker"  # Debian's docker.io client (20.10)

    def __init__(self, b: "Berth"):
        self.berth = b
        self.sock = os.path.join(b.base, "api.sock")
        self.url = "unix://" + self.sock
        self.log = os.path.join(b.base, "api.log")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(b.cmd("system", "service", "--time", "0", self.url),
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(self.sock) or self.process.poll() is not None, 20, "the API socket")
        assert self.process.poll() is None, f"berth system service ended:\n{self.output()}"

    def output(self) -> str:
        with open(self.log, errors="replace") as f:
            return f.read()

    @property
    def env(self) -> dict:
        return {**os.environ, "DOCKER_HOST": self.url, "DOCKER_CONFIG": os.path.join(self.berth.base, "docker-cli")}

    def docker(self, *args: str, client: str = DOCKER_28, input: bytes | str | None = None, timeout: float = 60
               ) -> subprocess.CompletedProcess:
        """The real docker CLI against this service."""
        text = not isinstance(input, bytes)
        return subprocess.run([client, *args], input=input, capture_output=True, text=text, timeout=timeout,
                              env=self.env, stdin=subprocess.DEVNULL if input is None else None)

    def docker_ok(self, *args: str, **kw) -> str:
        result = self.docker(*args, **kw)
        assert result.returncode == 0, f"docker {' '.join(args)} -> {result.returncode}\n{result.stderr}"
        return result.stdout

    def stop(self) -> None:
        """End the service (by its PID); its connections' servers end with their clients."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def api(busybox):
    """The Engine API service of a berth root that holds busybox:latest."""
    service = ApiService(busybox)
    try:
        yield service
    finally:
        service.stop()


def collect_child(read_fd: int, pid: int) -> tuple[bytes, int]:
    """Everything a forked test child wrote to our pipe (until it closes), then its wait status."""
    data = b""
    while chunk := os.read(read_fd, 65536):
        data += chunk
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    return data, status


# -- skips: only another architecture or cgroup mode --------------------------------------------

_skips: list[tuple[str, str]] = []


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _note_skip(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skips.append((report.nodeid, _skip_reason(report)))


def pytest_runtest_logreport(report) -> None:
    _note_skip(report)


def pytest_collectreport(report) -> None:
    _note_skip(report)


def _forbidden_skips() -> list[tuple[str, str]]:
    return [(node, reason) for node, reason in _skips if not reason.startswith(ALLOWED_SKIP_PREFIXES)]


def pytest_sessionfinish(session, exitstatus) -> None:
    """A skip hides a regression unless the test is for another architecture or cgroup mode:
    any other skip fails the run."""
    if _forbidden_skips() and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    forbidden = _forbidden_skips()
    terminalreporter.write_line(f"skipped: {len(_skips)} ({len(_skips) - len(forbidden)} for another "
                                f"architecture or cgroup mode, {len(forbidden)} not allowed)")
    if forbidden:
        terminalreporter.write_line("FAILED: tests skipped for a reason other than \"architecture:\" or "
                                    "\"cgroup mode:\" (a missing peer or feature must fail, not skip):", red=True)
        for node, reason in forbidden:
            terminalreporter.write_line(f"  {node}: {reason}", red=True)
