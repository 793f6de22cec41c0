"""The runtime's kernel sequencing, read from a recording fake kernel (fake_kernel.FakeKernel)
instead of run: which mounts, namespaces, hooks and credentials a container gets, and in what
order (runc's and crun's). No root, nothing made on the host. What the real kernel does with
the same steps is in tests/integration (test_runtime_cli, test_isolation, test_runtime_hooks,
test_cgroup_mount, test_hostile_runtime, test_seccomp)."""

import errno
import os

import pytest
from fake_kernel import Exited, FakeKernel, RecordingCgroup, RecordingHooks

from berth.errors import BerthError, InvalidArgument
from berth.runtime import container, mount, process
from berth.runtime import syscalls as sc
from berth.runtime.caps import CAPS
from berth.runtime.seccomp import Program

ROOTFS = "/bundle/rootfs"
FIFO = "/run/c1/exec.fifo"
OVERLAY = "lowerdir=/l2:/l1,upperdir=/c1/upper,workdir=/c1/work"
SECCOMP = Program(b"\0" * 24)  # three instructions: only its place matters here
MOUNT_NS = [{"type": "mount"}]


def base_spec(**process) -> dict:
    return {
        "process": {"args": ["true"], "env": ["PATH=/usr/bin:/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                    "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
                    "noNewPrivileges": True, **process},
        "root": {"path": "rootfs"},
        "hostname": "seq",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]},
    }


def new_kernel(**kwargs) -> FakeKernel:
    """A fake kernel where /bin/true is a program and the exec fifo a fifo; pipe() gives the
    status pipe, then the joined pipe holding the parent's "j"."""
    kwargs.setdefault("pipes", [("status", b""), ("joined", b"j")])
    return FakeKernel(files={"/bin/true": 0o100755, FIFO: 0o010600, **kwargs.pop("files", {})}, **kwargs)


def plan_of(spec: dict, exec_fifo=None, hooks=None, seccomp=None, cgroup_dirs=None) -> container._Plan:
    return container._Plan(spec, ROOTFS, OVERLAY, (0, 1, 2), exec_fifo, None, cgroup_dirs, seccomp, hooks)


def run_pid1(kernel: FakeKernel, plan: container._Plan) -> None:
    """The intermediate's namespaces, then pid 1 until (the fake's) execve returns."""
    status_w, joined_r = kernel.pipe()[1], kernel.pipe()[0]
    namespaces = plan.spec["linux"]["namespaces"]
    flags = container._enter_namespaces(namespaces, kernel)
    container._init(plan, status_w, joined_r, None, flags, namespaces, kernel)


def steps(kernel: FakeKernel, *starts: str) -> list[str]:
    """The logged calls that start with any of `starts`."""
    return [line for line in kernel.log if line.startswith(starts)]


def rootfs_fd(kernel: FakeKernel) -> int:
    return kernel.open(ROOTFS, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


# -- the rootfs -----------------------------------------------------------------------

def test_rootfs_is_built_in_runcs_order():
    """rootfs propagation, the overlay, each OCI mount in spec order with its remount and
    propagation, devices, sysctls, masked then read-only paths, pivot_root, the old root made
    rslave and detached, chdir to the new root."""
    spec = base_spec()
    spec["mounts"] += [
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755"]},
        {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro", "rprivate"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    ]
    spec["linux"].update(
        devices=[{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
        sysctl={"net.ipv4.ip_forward": "1"},
        maskedPaths=["/proc/kcore", "/sys/firmware", "/proc/timer_list"],
        readonlyPaths=["/proc/sys"],
    )
    kernel = new_kernel(files={ROOTFS + "/proc/kcore": 0o100400}, missing={ROOTFS + "/proc/timer_list"})
    container._build_rootfs(plan_of(spec), sc.CLONE_NEWNS, 0, 0, MOUNT_NS, kernel)
    nodes = [f'mknod("{ROOTFS}/dev/{name}", S_IFCHR|0666, makedev({major}, {minor}))'
             for name, major, minor in (*mount.DEFAULT_DEVICES, ("fuse", 10, 229))]
    assert steps(kernel, "mount(", "mknod(", "write(", "fchdir(", "pivot_root(", "umount2(", "chdir(") == [
        'mount(NULL, "/", NULL, MS_REC|MS_SLAVE, NULL)',
        f'mount("overlay", "{ROOTFS}", "overlay", 0, "{OVERLAY}")',
        f'mount("proc", "{ROOTFS}/proc", "proc", 0, NULL)',
        f'mount("tmpfs", "{ROOTFS}/dev", "tmpfs", MS_NOSUID|MS_STRICTATIME, "mode=755")',
        f'mount("/srv/data", "{ROOTFS}/data", NULL, MS_BIND|MS_REC, NULL)',
        f'mount(NULL, "{ROOTFS}/data", NULL, MS_RDONLY|MS_REMOUNT|MS_BIND, NULL)',
        f'mount(NULL, "{ROOTFS}/data", NULL, MS_REC|MS_PRIVATE, NULL)',
        f'mount("mqueue", "{ROOTFS}/dev/mqueue", "mqueue", MS_NOSUID|MS_NODEV|MS_NOEXEC, NULL)',
        *nodes,
        f"write(<{ROOTFS}/proc/sys/net/ipv4/ip_forward>, '1')",  # before /proc/sys turns read-only
        # runc's order: read-only paths, then masked ones
        f'mount("{ROOTFS}/proc/sys", "{ROOTFS}/proc/sys", NULL, MS_BIND|MS_REC, NULL)',
        f'mount(NULL, "{ROOTFS}/proc/sys", NULL, MS_RDONLY|MS_REMOUNT|MS_BIND, NULL)',  # keeping its nosuid...
        f'mount("/dev/null", "{ROOTFS}/proc/kcore", NULL, MS_BIND, NULL)',  # a file: /dev/null over it
        f'mount("tmpfs", "{ROOTFS}/sys/firmware", "tmpfs", MS_RDONLY, NULL)',  # a directory: an empty tmpfs
        f"fchdir(<{ROOTFS}>)",
        'pivot_root(".", ".")',
        "fchdir(</>)",  # the old root, by the fd opened before pivot_root
        'mount(NULL, ".", NULL, MS_REC|MS_SLAVE, NULL)',
        'umount2(".", MNT_DETACH)',
        'chdir("/")',
    ]


def test_a_read_only_rootfs_is_remounted_after_pivot_root():
    spec = base_spec()
    kernel = new_kernel()
    container._build_rootfs(plan_of(spec), sc.CLONE_NEWNS, 0, 0, MOUNT_NS, kernel)
    assert not [line for line in kernel.log if "MS_RDONLY" in line]
    spec["root"]["readonly"] = True
    kernel = new_kernel()
    container._build_rootfs(plan_of(spec), sc.CLONE_NEWNS, 0, 0, MOUNT_NS, kernel)
    assert steps(kernel, "pivot_root(", "umount2(", "chdir(", "mount(")[-5:] == [
        'pivot_root(".", ".")', 'mount(NULL, ".", NULL, MS_REC|MS_SLAVE, NULL)', 'umount2(".", MNT_DETACH)',
        'chdir("/")', 'mount(NULL, "/", NULL, MS_RDONLY|MS_REMOUNT|MS_BIND, NULL)',
    ]
    assert len([line for line in kernel.log if "MS_RDONLY" in line]) == 1


def test_a_bundle_rootfs_is_bound_onto_itself():
    """No overlay (berth-runtime's plain bundle): the rootfs directory is rbound onto itself."""
    kernel = new_kernel()
    plan = container._Plan(base_spec(), ROOTFS, None, (0, 1, 2), None, None)
    container._build_rootfs(plan, sc.CLONE_NEWNS, 0, 0, MOUNT_NS, kernel)
    assert steps(kernel, "mount(")[:2] == [
        'mount(NULL, "/", NULL, MS_REC|MS_SLAVE, NULL)', f'mount("{ROOTFS}", "{ROOTFS}", NULL, MS_BIND|MS_REC, NULL)']


def test_a_shared_rootfs_makes_its_parent_mount_private():
    """runc's rootfsParentMountPrivate: pivot_root refuses a shared parent."""
    spec = base_spec()
    spec["linux"]["rootfsPropagation"] = "rshared"
    kernel = new_kernel()
    container._build_rootfs(plan_of(spec), sc.CLONE_NEWNS, 0, 0, MOUNT_NS, kernel)
    parent = mount.mount_point_of("/bundle")  # read from this host's mountinfo, as the runtime does
    assert steps(kernel, "mount(")[:3] == [
        'mount(NULL, "/", NULL, MS_REC|MS_SHARED, NULL)', f'mount(NULL, "{parent}", NULL, MS_PRIVATE, NULL)',
        f'mount("overlay", "{ROOTFS}", "overlay", 0, "{OVERLAY}")',
    ]


# -- one mount ------------------------------------------------------------------------

@pytest.mark.parametrize("options, bind, remount", [
    (["ro"], "MS_BIND", "MS_RDONLY|MS_REMOUNT|MS_BIND"),
    (["rbind", "ro", "nosuid", "nodev"], "MS_BIND|MS_REC", "MS_RDONLY|MS_NOSUID|MS_NODEV|MS_REMOUNT|MS_BIND"),
    (["rbind", "rw"], "MS_BIND|MS_REC", None),
])
def test_a_bind_mounts_then_remounts_for_its_flags(options, bind, remount):
    """The bind itself ignores flags like ro: they take a remount of the new mount, resolved
    again (runc's reopenAfterMount)."""
    kernel = new_kernel()
    root = rootfs_fd(kernel)
    mount.mount_one(root, {"destination": "/etc/app", "type": "bind", "source": "/srv/conf", "options": options},
                    kernel=kernel)
    expected = [f'openat2(<{ROOTFS}>, "/etc/app", O_DIRECTORY|O_CLOEXEC|O_PATH, RESOLVE_NO_MAGICLINKS|RESOLVE_IN_ROOT)',
                f'mount("/srv/conf", "{ROOTFS}/etc/app", NULL, {bind}, NULL)',
                f'openat2(<{ROOTFS}>, "/etc/app", O_CLOEXEC|O_PATH, RESOLVE_NO_MAGICLINKS|RESOLVE_IN_ROOT)']
    if remount:
        expected.append(f'mount(NULL, "{ROOTFS}/etc/app", NULL, {remount}, NULL)')
    assert steps(kernel, "mount(", "openat2(") == expected


def test_a_bind_of_a_file_gets_a_file_to_mount_on():
    kernel = new_kernel(files={"/c1/hostname": 0o100644}, missing={ROOTFS + "/etc/hostname"})
    root = rootfs_fd(kernel)
    mount.mount_one(root, {"destination": "/etc/hostname", "type": "bind", "source": "/c1/hostname",
                           "options": ["rbind", "rprivate"]}, kernel=kernel)
    assert steps(kernel, "mount(", "open", "mkdir(") == [
        f'open("{ROOTFS}", O_DIRECTORY|O_CLOEXEC|O_PATH)',
        f'openat2(<{ROOTFS}>, "/etc/hostname", O_CLOEXEC|O_PATH, RESOLVE_NO_MAGICLINKS|RESOLVE_IN_ROOT) = -1 ENOENT',
        f'open("{ROOTFS}/etc", O_NOFOLLOW|O_CLOEXEC|O_PATH)',  # made a component at a time, never followed
        f'open("{ROOTFS}/etc/hostname", O_NOFOLLOW|O_CLOEXEC|O_PATH) = -1 ENOENT',
        f'open("{ROOTFS}/etc/hostname", O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0644)',
        f'mount("/c1/hostname", "{ROOTFS}/etc/hostname", NULL, MS_BIND|MS_REC, NULL)',
        f'openat2(<{ROOTFS}>, "/etc/hostname", O_CLOEXEC|O_PATH, RESOLVE_NO_MAGICLINKS|RESOLVE_IN_ROOT)',  # the bind
        f'mount(NULL, "{ROOTFS}/etc/hostname", NULL, MS_REC|MS_PRIVATE, NULL)',
    ]


def test_a_missing_mount_point_is_made_inside_the_rootfs():
    kernel = new_kernel(missing={ROOTFS + "/data"})
    mount.mount_one(rootfs_fd(kernel), {"destination": "/data/sub", "type": "tmpfs", "source": "tmpfs"},
                    kernel=kernel)
    assert steps(kernel, "mount(", "mkdir(") == [
        f'mkdir("{ROOTFS}/data", 0755)', f'mkdir("{ROOTFS}/data/sub", 0755)',
        f'mount("tmpfs", "{ROOTFS}/data/sub", "tmpfs", 0, NULL)',
    ]


def test_propagation_goes_onto_the_new_mount():
    """A mount then its propagation, on the mount point resolved again (the fd taken before
    shows what is under the new mount)."""
    kernel = new_kernel()
    mount.mount_one(rootfs_fd(kernel), {"destination": "/shared", "type": "tmpfs", "source": "tmpfs",
                                        "options": ["rshared", "size=1m"]}, kernel=kernel)
    assert steps(kernel, "mount(", "openat2(") == [
        f'openat2(<{ROOTFS}>, "/shared", O_DIRECTORY|O_CLOEXEC|O_PATH, RESOLVE_NO_MAGICLINKS|RESOLVE_IN_ROOT)',
        f'mount("tmpfs", "{ROOTFS}/shared", "tmpfs", 0, "size=1m")',
        f'openat2(<{ROOTFS}>, "/shared", O_CLOEXEC|O_PATH, RESOLVE_NO_MAGICLINKS|RESOLVE_IN_ROOT)',
        f'mount(NULL, "{ROOTFS}/shared", NULL, MS_REC|MS_SHARED, NULL)',
    ]


CGROUP_MOUNT = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["ro", "nosuid", "noexec", "nodev", "relatime"]}


def test_a_cgroup_v2_mount_is_a_bind_of_the_containers_own_cgroup():
    """Bound (so it can be made before pid 1 is in the cgroup), then remounted with its flags
    and runc's nosuid,nodev,noexec."""
    kernel = new_kernel()
    mount.mount_one(rootfs_fd(kernel), CGROUP_MOUNT, {"": "/sys/fs/cgroup/berth/c1"}, kernel)
    assert steps(kernel, "mount(", "mkdir(", "symlink(") == [
        f'mount("/sys/fs/cgroup/berth/c1", "{ROOTFS}/sys/fs/cgroup", NULL, MS_BIND, NULL)',
        f'mount(NULL, "{ROOTFS}/sys/fs/cgroup", NULL, MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC|MS_REMOUNT|MS_BIND|'
        'MS_RELATIME, NULL)',
    ]


def test_a_cgroup_v1_mount_is_a_tmpfs_of_binds():
    """A tmpfs with one directory per hierarchy and a symlink per co-mounted controller, made
    read-only before the binds, then each hierarchy's own cgroup bound and remounted."""
    kernel = new_kernel()
    host_dirs = {"cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/berth/c1", "memory": "/sys/fs/cgroup/memory/berth/c1"}
    mount.mount_one(rootfs_fd(kernel), CGROUP_MOUNT, host_dirs, kernel)
    cgroup = ROOTFS + "/sys/fs/cgroup"
    attrs = "MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC|MS_REMOUNT|MS_BIND|MS_RELATIME"
    assert steps(kernel, "mount(", "mkdir(", "symlink(") == [
        f'mount("tmpfs", "{cgroup}", "tmpfs", MS_NOSUID|MS_NODEV|MS_NOEXEC, "mode=755")',
        f'mkdir("{cgroup}/cpu,cpuacct", 0755)',
        f'symlink("cpu,cpuacct", "{cgroup}/cpu")',
        f'symlink("cpu,cpuacct", "{cgroup}/cpuacct")',
        f'mkdir("{cgroup}/memory", 0755)',
        f'mount("/sys/fs/cgroup/cpu,cpuacct/berth/c1", "{cgroup}/cpu,cpuacct", NULL, MS_BIND, NULL)',
        f'mount(NULL, "{cgroup}/cpu,cpuacct", NULL, {attrs}, NULL)',
        f'mount("/sys/fs/cgroup/memory/berth/c1", "{cgroup}/memory", NULL, MS_BIND, NULL)',
        f'mount(NULL, "{cgroup}/memory", NULL, {attrs}, NULL)',
    ]


def test_a_cgroup_mount_needs_the_containers_cgroup():
    kernel = new_kernel()
    with pytest.raises(BerthError, match="a cgroup mount needs the container's cgroup"):
        mount.mount_one(rootfs_fd(kernel), CGROUP_MOUNT, None, kernel)
    assert not kernel.calls("mount")


def test_devices_replace_what_is_there_then_dev_gets_its_links():
    kernel = new_kernel(missing={ROOTFS + "/dev/tty"})
    mount.create_devices(rootfs_fd(kernel), [{"path": "/dev/sda", "type": "b", "major": 8, "minor": 0,
                                              "fileMode": 0o600, "uid": 0, "gid": 6}], kernel)
    dev = ROOTFS + "/dev"
    nodes = [(name, "S_IFCHR|0666", major, minor, 0) for name, major, minor in mount.DEFAULT_DEVICES]
    assert steps(kernel, "umask(", "unlink(", "mknod(", "chown(", "symlink(") == [
        "umask(0000)",  # modes as the spec gives them
        *[line for name, mode, major, minor, gid in (*nodes, ("sda", "S_IFBLK|0600", 8, 0, 6)) for line in (
            f'unlink("{dev}/{name}")' + (" = -1 ENOENT" if name == "tty" else ""),  # replaced, never followed
            f'mknod("{dev}/{name}", {mode}, makedev({major}, {minor}))',
            f'chown("{dev}/{name}", 0, {gid})')],
        f'symlink("/proc/self/fd", "{dev}/fd")', f'symlink("/proc/self/fd/0", "{dev}/stdin")',
        f'symlink("/proc/self/fd/1", "{dev}/stdout")', f'symlink("/proc/self/fd/2", "{dev}/stderr")',
        f'symlink("/proc/kcore", "{dev}/core")', f'symlink("pts/ptmx", "{dev}/ptmx")',
        "umask(0022)",  # restored
    ]


# -- namespaces -------------------------------------------------------------------------

def test_namespaces_by_path_are_joined_mount_last_then_the_rest_unshared():
    """All paths are opened before any setns (joining the mount namespace changes what they
    mean); the cgroup namespace is left for pid 1, once it is in its cgroup."""
    kernel = new_kernel()
    namespaces = [{"type": "mount", "path": "/proc/7/ns/mnt"}, {"type": "network", "path": "/proc/7/ns/net"},
                  {"type": "pid"}, {"type": "uts"}, {"type": "cgroup"}]
    flags = container._enter_namespaces(namespaces, kernel)
    assert flags == sc.CLONE_NEWPID | sc.CLONE_NEWUTS
    assert kernel.log == [
        'open("/proc/7/ns/mnt", O_RDONLY|O_CLOEXEC)', 'open("/proc/7/ns/net", O_RDONLY|O_CLOEXEC)',
        "setns(</proc/7/ns/net>, CLONE_NEWNET)", "setns(</proc/7/ns/mnt>, CLONE_NEWNS)",
        "unshare(CLONE_NEWUTS|CLONE_NEWPID)",
    ]
    assert not kernel.fds  # every namespace fd closed


def test_the_intermediate_is_undumpable_before_any_namespace_and_reports_pid1():
    kernel = new_kernel(forks=[77])
    status_w, joined_r = kernel.pipe()[1], kernel.pipe()[0]
    with pytest.raises(Exited) as exited:
        container._intermediate(plan_of(base_spec()), status_w, joined_r, None, kernel)
    assert exited.value.code == 0
    assert kernel.log == [
        "prctl(PR_SET_DUMPABLE, 0)",
        "unshare(CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET)",
        "fork() = 77",
        "write(<pipe:status>, '{\"pid\":77}')",
        "exit(0)",
    ]


def test_a_new_user_namespace_is_mapped_by_a_helper_before_the_others_are_made():
    """runc's nsexec order: a helper forked first writes the maps from the parent namespace
    (where it has CAP_SETUID); we become uid 0 with no groups, make the other namespaces (owned
    by the new one), and only then take gid 0."""
    kernel = new_kernel(forks=[55, 77], pipes=[("status", b""), ("joined", b"j"), ("go", b""), ("done", b"0")])
    spec = base_spec()
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    status_w, joined_r = kernel.pipe()[1], kernel.pipe()[0]
    with pytest.raises(Exited):
        container._intermediate(plan_of(spec), status_w, joined_r, None, kernel)
    assert steps(kernel, "fork(", "unshare(", "write(<pipe:go>", "read(<pipe:done>", "waitpid(", "setgroups(",
                 "setresuid(", "setresgid(") == [
        "fork() = 55",  # the helper
        "unshare(CLONE_NEWUSER)",
        "write(<pipe:go>, 'u')",
        "read(<pipe:done>) = '0'",
        "waitpid(55)",
        "setgroups([])",
        "setresuid(0, 0, 0)",
        "unshare(CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET)",
        "setresgid(0, 0, 0)",
        "fork() = 77",  # pid 1
    ]


# -- pid 1 --------------------------------------------------------------------------------

def test_pid1_without_hooks_waits_for_its_cgroup_after_pivot_root():
    """The parent moves pid 1 into its cgroup while pid 1 builds its rootfs; pid 1 waits for
    that ("j") only before it needs it: the cgroup namespace, then cwd, credentials, exec."""
    kernel = new_kernel()
    run_pid1(kernel, plan_of(base_spec(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}])))
    assert steps(kernel, "setsid(", "loopback_up(", "pivot_root(", "sethostname(", "setrlimit(", "read(",
                 "unshare(", "fchdir(</>", "setresuid(", "execve(") == [
        "unshare(CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET)",
        "setsid()",
        "loopback_up()",
        'pivot_root(".", ".")',
        "fchdir(</>)",
        'sethostname("seq")',
        "setrlimit(RLIMIT_NOFILE, 1024, 2048)",
        "read(<pipe:joined>) = 'j'",
        "unshare(CLONE_NEWCGROUP)",
        "fchdir(</>)",  # process.cwd, resolved under the new root
        "setresuid(0, 0, 0)",
        "execve(\"/bin/true\", ['true'])",
    ]


def test_pid1_joins_a_session_keyring_of_its_own_searchable_by_its_uid():
    """runc's default: "_ses.<id>" joined first thing in pid 1, made searchable by its uid (by
    "other" in a user namespace); --no-new-keyring (None) keeps the caller's."""
    kernel = new_kernel()
    plan = plan_of(base_spec())
    plan.session_keyring = "_ses.c1"
    run_pid1(kernel, plan)
    assert steps(kernel, "setsid(", "keyctl(", "loopback_up(") == [
        "setsid()", 'keyctl(KEYCTL_JOIN_SESSION_KEYRING, "_ses.c1") = 1234', "keyctl(KEYCTL_SETPERM, 1234, 0x3f1b0000)",
        "loopback_up()"]
    kernel = new_kernel()
    run_pid1(kernel, plan_of(base_spec()))
    assert steps(kernel, "keyctl(") == []


def test_no_pivot_moves_the_rootfs_onto_root_and_chroots():
    """runc's --no-pivot (msMoveRoot): no pivot_root; the rootfs mount moved onto / from inside
    it, then chroot(".")."""
    kernel = new_kernel()
    plan = plan_of(base_spec())
    plan.no_pivot = True
    run_pid1(kernel, plan)
    assert steps(kernel, "pivot_root(") == []
    moved = steps(kernel, f"fchdir(<{ROOTFS}>", 'mount(".", "/"', "chroot(", 'chdir("/")')
    assert moved == [f"fchdir(<{ROOTFS}>)", 'mount(".", "/", NULL, MS_MOVE, NULL)', 'chroot(".")', 'chdir("/")']


def test_hooks_and_the_exec_fifo_wait_at_runcs_places():
    """createContainer in pid 1 after the parent's prestart and createRuntime ("mounted", then
    "j"), from the rootfs, before pivot_root; startContainer once `start` opened the exec fifo
    (pid 1 holds it by an O_PATH fd from the start), after credentials and seccomp, then "0"
    to `start`, then exec."""
    kernel = new_kernel()
    hooks = RecordingHooks(kernel, "prestart", "createRuntime", "createContainer", "startContainer")
    run_pid1(kernel, plan_of(base_spec(), exec_fifo=FIFO, hooks=hooks, seccomp=SECCOMP))
    assert steps(kernel, "write(<pipe", "read(", "unshare(CLONE_NEWCGROUP", "hook ", f"fchdir(<{ROOTFS}>",
                 "pivot_root(", "capset(", "seccomp(", f'open("{FIFO}"', f"write(<{FIFO}>", "execve(") == [
        f'open("{FIFO}", O_CLOEXEC|O_PATH)',
        "write(<pipe:status>, '{\"mounted\":true}')",
        "read(<pipe:joined>) = 'j'",
        "unshare(CLONE_NEWCGROUP)",
        f"fchdir(<{ROOTFS}>)",
        "hook createContainer(1, creating)",
        f"fchdir(<{ROOTFS}>)",
        'pivot_root(".", ".")',
        "capset(CAP_KILL, CAP_KILL, 0)",
        "seccomp(SECCOMP_SET_MODE_FILTER, 0, <3 instructions>)",
        "write(<pipe:status>, '{\"ready\":true}')",
        f'open("{FIFO}", O_WRONLY|O_CLOEXEC)',  # blocks until `start` opens it for reading
        "hook startContainer(1, created)",
        f"write(<{FIFO}>, '0')",
        "execve(\"/bin/true\", ['true'])",
    ]


def test_a_failing_start_hook_tells_start_and_stops_before_exec():
    kernel = new_kernel()
    hooks = RecordingHooks(kernel, "startContainer", failing="startContainer")
    with pytest.raises(Exited) as exited:
        run_pid1(kernel, plan_of(base_spec(), exec_fifo=FIFO, hooks=hooks))
    assert exited.value.code == 128
    assert kernel.log[-4:] == [
        "hook startContainer(1, created)",
        f"write(<{FIFO}>, '1error running startContainer hook #0: exit status 1')",
        "write(<pipe:status>, '{\"error\":\"error running startContainer hook #0: exit status 1\","
        "\"kind\":\"system\"}')",
        "exit(128)",
    ]
    assert not kernel.calls("execve")


def test_a_failing_mount_is_reported_and_nothing_after_it_runs():
    spec = base_spec()
    spec["mounts"].append({"destination": "/data", "type": "bind", "source": "/srv/data"})
    kernel = new_kernel(failures={'mount("/srv/data"': errno.ENOENT})
    with pytest.raises(Exited) as exited:
        run_pid1(kernel, plan_of(spec))
    assert exited.value.code == 128
    assert kernel.log[-3:] == [
        f'mount("/srv/data", "{ROOTFS}/data", NULL, MS_BIND, NULL) = -1 ENOENT',
        "write(<pipe:status>, '{\"error\":\"error mounting \\\\\"/srv/data\\\\\" to rootfs at \\\\\"/data\\\\\": "
        "No such file or directory\",\"kind\":\"system\"}')",
        "exit(128)",
    ]


def test_exec_into_a_running_container_builds_no_rootfs():
    """exec: every namespace joined by path, so no mount, no pivot_root; the cwd is resolved
    under the container's root, then credentials and exec as for pid 1."""
    kernel = new_kernel()
    spec = base_spec(cwd="/work")
    spec["linux"]["namespaces"] = [{"type": "mount", "path": "/proc/7/ns/mnt"},
                                   {"type": "pid", "path": "/proc/7/ns/pid"}]
    run_pid1(kernel, container._Plan(spec, None, None, (0, 1, 2), None, None))
    assert not kernel.calls("mount", "pivot_root", "umount2", "unshare", "mknod")
    assert steps(kernel, "setns(", "read(", "fchdir(", "setresuid(", "execve(") == [
        "setns(</proc/7/ns/pid>, CLONE_NEWPID)",
        "setns(</proc/7/ns/mnt>, CLONE_NEWNS)",
        "read(<pipe:joined>) = 'j'",
        "fchdir(</work>)",
        "setresuid(0, 0, 0)",
        "execve(\"/bin/true\", ['true'])",
    ]


# -- credentials and seccomp ------------------------------------------------------------------

def test_credentials_are_set_in_runcs_order():
    """Keep capabilities across the user switch, drop the bounding set while CAP_SETPCAP is
    held, then setgroups, setresgid, setresuid, capset (and ambient), no_new_privs last."""
    kernel = new_kernel()
    capabilities = {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
                    "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}
    process.set_credentials({"user": {"uid": 1000, "gid": 100, "additionalGids": [10, 20], "umask": 0o077},
                             "capabilities": capabilities, "noNewPrivileges": True}, kernel)
    drops = [f"prctl(PR_CAPBSET_DROP, {name})" for name in CAPS if name not in ("CAP_CHOWN", "CAP_KILL")]
    assert kernel.log == [
        "prctl(PR_SET_KEEPCAPS, 1)",
        *drops,
        "setgroups([10, 20])",
        "setresgid(100, 100, 100)",
        "setresuid(1000, 1000, 1000)",
        "capset(CAP_KILL, CAP_KILL, CAP_KILL)",
        "prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL)",
        "prctl(PR_SET_KEEPCAPS, 0)",
        "prctl(PR_SET_NO_NEW_PRIVS, 1)",
        "umask(0077)",
    ]


def test_the_bounding_set_is_dropped_up_to_the_kernels_last_capability():
    kernel = new_kernel(last_cap=37)  # a kernel before CAP_PERFMON
    process.set_credentials({"capabilities": {"bounding": []}}, kernel)
    assert kernel.calls("prctl")[1:-1] == [f"prctl(PR_CAPBSET_DROP, {name})" for name in CAPS[:38]]


CREDENTIAL_STEPS = ("setgroups(", "setresgid(", "setresuid(", "capset(", "prctl(PR_SET_NO_NEW_PRIVS", "close_range(",
                    "seccomp(", "execve(")


def test_with_no_new_privileges_seccomp_is_last_before_exec():
    kernel = new_kernel()
    run_pid1(kernel, plan_of(base_spec(), seccomp=SECCOMP))
    assert steps(kernel, *CREDENTIAL_STEPS) == [
        "setgroups([])", "setresgid(0, 0, 0)", "setresuid(0, 0, 0)", "capset(CAP_KILL, CAP_KILL, 0)",
        "prctl(PR_SET_NO_NEW_PRIVS, 1)", "close_range(3, ~0U, CLOSE_RANGE_CLOEXEC)",
        "seccomp(SECCOMP_SET_MODE_FILTER, 0, <3 instructions>)", "execve(\"/bin/true\", ['true'])",
    ]
    after = kernel.log[kernel.log.index("seccomp(SECCOMP_SET_MODE_FILTER, 0, <3 instructions>)") + 1:]
    assert all(line.startswith(("signal(", "sigprocmask(", "execve(")) for line in after)  # reset for exec only


def test_without_no_new_privileges_seccomp_goes_in_before_capabilities_are_dropped():
    """Then loading a filter needs CAP_SYS_ADMIN: before the user switch (runc's order)."""
    kernel = new_kernel()
    run_pid1(kernel, plan_of(base_spec(noNewPrivileges=False), seccomp=SECCOMP))
    assert steps(kernel, *CREDENTIAL_STEPS) == [
        "seccomp(SECCOMP_SET_MODE_FILTER, 0, <3 instructions>)",
        "setgroups([])", "setresgid(0, 0, 0)", "setresuid(0, 0, 0)", "capset(CAP_KILL, CAP_KILL, 0)",
        "close_range(3, ~0U, CLOSE_RANGE_CLOEXEC)", "execve(\"/bin/true\", ['true'])",
    ]


# -- the parent's side -------------------------------------------------------------------

def fork_container(kernel: FakeKernel, plan: container._Plan) -> container.Launched:
    def on_created(pid: int) -> None:
        kernel.log.append(f"on_created({pid})")

    return container._fork_container(plan, RecordingCgroup(kernel), on_created, kernel)


def test_the_parent_runs_runtime_hooks_between_mounted_and_joined():
    """pid 1's pid from the intermediate, into the cgroup, the network plugged in; prestart and
    createRuntime once pid 1 said its mounts are made; then "j" lets pid 1 go on."""
    kernel = new_kernel(forks=[41], pipes=[("status", b'{"pid":42}\n{"mounted":true}\n'), ("joined", b"")])
    hooks = RecordingHooks(kernel, "prestart", "createRuntime", "createContainer")
    launched = fork_container(kernel, plan_of(base_spec(), hooks=hooks))
    assert launched.pid == 42
    assert kernel.log == [
        "fork() = 41",
        "waitpid(41)",
        "read(<pipe:status>) = '{\"pid\":42}\\n'",
        "cgroup.add(42)",
        "on_created(42)",
        "read(<pipe:status>) = '{\"mounted\":true}\\n'",
        "hook prestart(42, creating)",
        "hook createRuntime(42, creating)",
        "write(<pipe:joined>, 'j')",
        "read(<pipe:status>) = ''",  # EOF: exec closed the pipe
    ]
    assert not kernel.fds  # both pipes closed


def test_pid1_saying_mounted_before_the_intermediate_gives_its_pid_is_kept_for_later():
    """Both write the status pipe: on a loaded host pid 1 can make its mounts and say so before
    the intermediate (descheduled after fork) has written the pid."""
    kernel = new_kernel(forks=[41], pipes=[("status", b'{"mounted":true}\n{"pid":42}\n'), ("joined", b"")])
    hooks = RecordingHooks(kernel, "prestart", "createRuntime", "createContainer")
    assert fork_container(kernel, plan_of(base_spec(), hooks=hooks)).pid == 42
    assert steps(kernel, "cgroup.add(", "hook ", "write(") == [
        "cgroup.add(42)", "hook prestart(42, creating)", "hook createRuntime(42, creating)",
        "write(<pipe:joined>, 'j')",
    ]


def test_a_seccomp_listener_is_handed_to_the_agent_before_pid1_goes_on(monkeypatch):
    """pid 1 says which fd its notification listener is; the parent takes it and sends it to the
    agent, then answers "s" on the joined pipe (pid 1 waits for that before exec)."""
    kernel = new_kernel(forks=[41], pipes=[("status", b'{"pid":42}\n{"seccompFd":7}\n'), ("joined", b"")])
    handed = []  # the agent's side (a unix socket, a real pidfd) is the integration test's
    monkeypatch.setattr(container, "_hand_to_agent", lambda plan, pid, fd, kernel: handed.append((pid, fd)))
    fork_container(kernel, plan_of(base_spec()))
    assert handed == [(42, 7)]
    assert steps(kernel, "write(") == ["write(<pipe:joined>, 'j')", "write(<pipe:joined>, 's')"]


def test_without_hooks_the_parent_does_not_wait_for_the_mounts():
    kernel = new_kernel(forks=[41], pipes=[("status", b'{"pid":42}\n'), ("joined", b"")])
    fork_container(kernel, plan_of(base_spec()))
    assert kernel.log == ["fork() = 41", "waitpid(41)", "read(<pipe:status>) = '{\"pid\":42}\\n'", "cgroup.add(42)",
                          "on_created(42)", "write(<pipe:joined>, 'j')", "read(<pipe:status>) = ''"]


def test_a_failure_pid1_reports_is_raised_with_its_kind_and_pid1_is_reaped():
    kernel = new_kernel(forks=[41], pipes=[
        ("status", b'{"pid":42}\n{"error":"invalid rlimit","kind":"invalid"}\n'), ("joined", b"")])
    with pytest.raises(InvalidArgument, match="invalid rlimit"):
        fork_container(kernel, plan_of(base_spec()))
    assert kernel.log[-3:] == ["read(<pipe:status>) = '{\"error\":\"invalid rlimit\",\"kind\":\"invalid\"}\\n'",
                               "kill(42, SIGKILL)", "waitpid(42)"]
