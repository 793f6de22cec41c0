"""docker run/create's ergonomics flags (issue 14), each compared with what docker 28 does:
--cidfile, -a, --sig-proxy, --domainname, --pull, --platform, --runtime, daemon.json's
init-path, the per-network flags on the default bridge, --gpus/--isolation/--volume-driver/
--use-api-socket/--annotation, --env-file names, -it without a terminal, /.dockerenv; and
the image and volume commands' flags berth takes only to refuse clearly."""

import json
import os
import shutil
import signal
import subprocess

from conftest import require_peer, runtime_binary


def nothing_created(b) -> bool:
    return b.ok("ps", "-aq") == ""


def all_refused(b, cases) -> None:
    """Each (exit code, run/create arguments, what its stderr says) is refused so, and none
    leaves a container behind."""
    for code, args, says in cases:
        b.fails(code, *args, says=says)
    assert nothing_created(b)


def inspect(b, ref: str, template: str):
    return json.loads(b.ok("inspect", "--format", "{{json " + template + "}}", ref))


def host_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def other_arch() -> str:
    return "arm64" if host_arch() == "amd64" else "amd64"


# -- --cidfile ----------------------------------------------------------------------

def test_cidfile_holds_the_id_and_an_existing_one_is_refused(busybox, tmp_path):
    path = str(tmp_path / "cid")
    container_id = busybox.ok("create", "--name", "c1", "--cidfile", path, "busybox", "true").strip()
    with open(path) as f:
        assert f.read() == container_id  # no newline, as docker's
    assert inspect(busybox, "c1", ".HostConfig.ContainerIDFile") == path
    busybox.fails(125, "run", "--rm", "--cidfile", path, "busybox", "true",
                  says=f"container ID file found, make sure the other container isn't running or delete {path}")
    assert busybox.ok("ps", "-aq").split() == [container_id[:12]]
    with open(path) as f:
        assert f.read() == container_id  # untouched


def test_cidfile_of_a_failed_create_is_removed_and_a_run_keeps_it(busybox, tmp_path):
    path = str(tmp_path / "cid")
    busybox.fails(125, "create", "--cidfile", path, "--pull", "never", "nosuch", says="No such image")
    assert not os.path.exists(path)
    busybox.ok("run", "--rm", "--cidfile", path, "busybox", "true")
    with open(path) as f:
        assert len(f.read()) == 64  # docker leaves it after --rm too


# -- -a / --attach, --sig-proxy --------------------------------------------------------

def test_attach_selects_the_streams_shown(busybox):
    script = "echo out; echo err >&2"
    result = busybox("run", "--rm", "-a", "stdout", "busybox", "sh", "-c", script)
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\n", "")
    result = busybox("run", "--rm", "-a", "STDERR", "busybox", "sh", "-c", script)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "err\n")
    result = busybox("run", "--rm", "-a", "stdout", "-a", "stderr", "busybox", "sh", "-c", script)
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    busybox.ok("create", "--name", "sel", "-i", "-a", "stdout", "busybox", "true")
    assert busybox.ok("inspect", "--format", "{{.Config.AttachStdin}} {{.Config.AttachStdout}} "
                      "{{.Config.AttachStderr}}", "sel") == "true true false\n"


def test_attach_refusals_are_dockers(busybox):
    all_refused(busybox, [
        (125, ("run", "--rm", "-a", "foo", "busybox", "true"),
         'invalid argument "foo" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR'),
        (1, ("run", "-d", "-a", "stdout", "busybox", "true"),
         "conflicting options: cannot specify both --attach and --detach"),
    ])


def test_sig_proxy_false_leaves_the_signal_to_the_client(busybox):
    script = 'trap "exit 7" TERM; echo ready; while true; do sleep 0.05; done'
    client = subprocess.Popen(busybox.cmd("run", "--sig-proxy=false", "--name", "sp", "busybox", "sh", "-c", script),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert client.stdout.readline() == b"ready\n"
        client.send_signal(signal.SIGTERM)
        assert client.wait(timeout=30) == -signal.SIGTERM
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        client.stdout.close()
        client.stderr.close()
    assert inspect(busybox, "sp", ".State.Running") is True  # the container never saw it
    busybox.ok("rm", "-f", "sp")


# -- names, domain, marker ------------------------------------------------------------

def test_domainname_is_the_containers_nis_domain_and_in_its_hosts(busybox):
    out = busybox.ok("run", "--rm", "-h", "web", "--domainname", "example.com", "busybox", "sh", "-c",
                     "cat /proc/sys/kernel/domainname; hostname; grep web /etc/hosts")
    domain, hostname, hosts_line = out.splitlines()
    assert (domain, hostname) == ("example.com", "web")
    assert hosts_line.split()[1:] == ["web.example.com", "web"]
    busybox.ok("create", "--name", "dn", "--domainname", "example.com", "busybox", "true")
    assert inspect(busybox, "dn", ".Config.Domainname") == "example.com"
    # without one: the kernel's "(none)", as in docker
    assert busybox.ok("run", "--rm", "busybox", "cat", "/proc/sys/kernel/domainname") == "(none)\n"


def test_dockerenv_exists_empty_and_outside_the_containers_changes(busybox):
    out = busybox.ok("run", "--name", "env", "busybox", "stat", "-c", "%s %a %U", "/.dockerenv")
    assert out == "0 755 root\n"
    assert ".dockerenv" not in busybox.ok("diff", "env")


# -- --pull, --platform, --runtime, init-path ----------------------------------------------

def test_pull_policies(busybox):
    assert busybox.ok("run", "--rm", "--pull", "never", "busybox", "echo", "ok") == "ok\n"
    assert busybox.ok("run", "--rm", "--pull", "missing", "busybox", "echo", "ok") == "ok\n"
    err = busybox.fails(125, "run", "--rm", "--pull", "never", "nosuch", says="No such image: nosuch:latest")
    assert "Unable to find image" not in err  # docker says so only when it would pull
    all_refused(busybox, [
        # pulled from loopback, where nothing listens (tests contact no other registry)
        (125, ("run", "--rm", "--pull", "missing", "127.0.0.1:9/nosuch"),
         ("Unable to find image '127.0.0.1:9/nosuch:latest' locally", "connection refused")),
        (125, ("run", "--rm", "--pull", "always", "127.0.0.1:9/busybox", "true"), "connection refused"),
        (125, ("run", "--rm", "--pull", "bogus", "busybox", "true"),
         "invalid pull option: 'bogus': must be one of \"always\", \"missing\" or \"never\""),
    ])


def test_platform_of_the_host_only(busybox):
    for platform in (f"linux/{host_arch()}", "linux", f"LINUX/{host_arch().upper()}"):
        assert busybox.ok("run", "--rm", "--platform", platform, "busybox", "echo", "ok") == "ok\n"
    all_refused(busybox, [
        (125, ("run", "--rm", "--platform", f"linux/{other_arch()}", "busybox", "true"),
         f"does not match the specified platform (linux/{other_arch()})"),
        (125, ("create", "--platform", "windows/amd64", "busybox", "true"),
         "does not match the specified platform (windows/amd64)"),
        (125, ("run", "--rm", "--platform", "bogus", "busybox", "true"),
         'error parsing specified platform: "bogus": unknown operating system or architecture'),
    ])


def runtime_states(b, name: str) -> list[str]:
    """The containers runtime `name` keeps state of (under our run-root, as the engine runs it)."""
    return sorted(os.listdir(os.path.join(b.run_root, "runtimes", name))) if os.path.isdir(
        os.path.join(b.run_root, "runtimes", name)) else []


def test_external_runtimes_run_the_same_bundle(busybox):
    """--runtime with a name of daemon.json's runtimes: runc (as dockerd's default) and our
    own berth-runtime CLI run what the in-process runtime would, network and exit code included."""
    runc = require_peer("runc")
    busybox.configure(runtimes={"runc": {"path": runc}, "berth-runtime": {"path": runtime_binary()}})
    script = "echo hi >&2; ip -o -4 addr show eth0 | wc -l; test -e /.dockerenv && exit 3"
    for name in ("runc", "berth-runtime", "berth"):
        result = busybox("run", "--rm", "--runtime", name, "busybox", "sh", "-c", script)
        assert (result.returncode, result.stdout, result.stderr) == (3, "1\n", "hi\n"), name
        # with -t, the pty the runtime made (sent over --console-socket) is the container's stdio
        assert busybox("run", "--rm", "-t", "--runtime", name, "busybox", "tty").stdout == "/dev/pts/0\n", name
    busybox.ok("run", "-d", "--name", "under-runc", "--runtime", "runc", "busybox", "sleep", "60")
    assert inspect(busybox, "under-runc", ".HostConfig.Runtime") == "runc"
    assert busybox.ok("exec", "under-runc", "echo", "exec") == "exec\n"
    container_id = inspect(busybox, "under-runc", ".Id")
    assert runtime_states(busybox, "runc") == [container_id]
    busybox.ok("stop", "-t", "1", "under-runc")
    assert runtime_states(busybox, "runc") == []  # its state deleted when it ended, as dockerd's shim does
    busybox.ok("start", "under-runc")
    assert inspect(busybox, "under-runc", ".State.Running") is True
    busybox.ok("rm", "-f", "under-runc")
    assert runtime_states(busybox, "runc") == []


def test_runtime_names_and_the_default_runtime(busybox):
    busybox.configure(runtimes={"runc": {"path": require_peer("runc")}})
    busybox.ok("create", "--name", "rt", "--runtime", "berth", "busybox", "true")
    assert inspect(busybox, "rt", ".HostConfig.Runtime") == "berth"
    busybox.fails(125, "run", "--rm", "--runtime", "nosuch", "busybox", "true",
                  says="unknown or invalid runtime name: nosuch")
    # daemon.json's default-runtime: every container's, unless --runtime says otherwise
    busybox.configure(runtimes={"runc": {"path": require_peer("runc")}}, **{"default-runtime": "runc"})
    busybox.ok("create", "--name", "by-default", "busybox", "true")
    assert inspect(busybox, "by-default", ".HostConfig.Runtime") == "runc"
    assert busybox.ok("start", "-a", "by-default") == ""
    assert "Default Runtime: runc" in busybox.ok("info")
    busybox.configure(**{"default-runtime": "nosuch"})
    busybox.fails(125, "run", "--rm", "busybox", "true", says="default-runtime nosuch (in ")
    busybox.configure()
    assert len(busybox.ok("ps", "-aq").split()) == 2


def test_init_path_of_the_engine_settings(busybox, tmp_path):
    tini = next(p for p in ("/usr/bin/tini-static", "/usr/bin/docker-init") if os.path.exists(p))
    copy = str(tmp_path / "my-init")
    shutil.copy(tini, copy)
    busybox.configure(**{"init-path": copy})
    assert busybox.ok("run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '") == \
        "/sbin/docker-init -- sh -c cat /proc/1/cmdline | tr '\\0' ' ' "
    busybox.configure(**{"init-path": str(tmp_path / "missing")})
    busybox.fails(125, "run", "--rm", "--init", "busybox", "true", says=f"init-path {tmp_path}/missing")


# -- the network flags on the default bridge --------------------------------------------

def test_network_flags_on_the_default_networks_as_docker(busybox):
    static = "user specified IP address is supported on user defined networks only"
    all_refused(busybox, [(125, ("run", "--rm", *flags, "busybox", "true"), says) for flags, says in [
        (("--ip", "10.1.2.3"), static),
        (("--ip6", "2001:db8::33"), static),
        (("--ip", "bogus"), "invalid IPv4 address: bogus"),
        (("--network-alias", "db"), "network-scoped aliases are only supported for user-defined networks"),
        (("--link-local-ip", "10.1.1.1"), "invalid link local IP address: 10.1.1.1"),
        (("--mac-address", "bogus"), "bogus is not a valid mac address"),
        (("--network", "none", "--mac-address", "92:d0:c6:0a:29:33"),
         "conflicting options: mac-address and the network mode none"),
    ]])


def test_link_local_ips_on_the_bridge_as_docker(busybox):
    """docker adds --link-local-ip addresses to eth0 beside the bridge's (IPv4 /16) and shows
    them as the endpoint's IPAMConfig; they come back with every start."""
    busybox.ok("create", "--name", "ll", "--link-local-ip", "169.254.10.10", "busybox", "ip", "-4", "addr", "show",
               "eth0")
    assert inspect(busybox, "ll", ".NetworkSettings.Networks.bridge.IPAMConfig") == {"LinkLocalIPs": ["169.254.10.10"]}
    for _ in range(2):
        out = busybox.ok("start", "-a", "ll")
        assert "inet 169.254.10.10/16" in out and f"inet {busybox.subnet.rsplit('.', 1)[0]}." in out
    assert inspect(busybox, "ll", ".NetworkSettings.Networks.bridge.IPAMConfig") == {"LinkLocalIPs": ["169.254.10.10"]}
    busybox.ok("rm", "ll")
    # where there is no bridge endpoint docker accepts them and adds nothing
    assert "169.254" not in busybox.ok("run", "--rm", "--network", "none", "--link-local-ip", "169.254.10.10",
                                       "busybox", "ip", "addr")


def test_mac_address_on_the_bridge(busybox):
    busybox.ok("run", "-d", "--name", "mac", "--mac-address", "92:D0:C6:0A:29:33", "busybox", "sleep", "60")
    assert busybox.ok("exec", "mac", "cat", "/sys/class/net/eth0/address") == "92:d0:c6:0a:29:33\n"
    assert inspect(busybox, "mac", ".NetworkSettings.MacAddress") == "92:d0:c6:0a:29:33"
    assert inspect(busybox, "mac", ".Config.MacAddress") == "92:d0:c6:0a:29:33"
    busybox.ok("rm", "-f", "mac")


# -- accepted as docker on Linux, or refused naming the flag ----------------------------------

def test_flags_accepted_as_on_linux(busybox):
    busybox.ok("create", "--name", "acc", "--isolation", "default", "--volume-driver", "local", "--annotation",
               "org.example.key=value", "--quiet", "--disable-content-trust", "busybox", "true")
    assert inspect(busybox, "acc", ".HostConfig.Isolation") == "default"
    assert inspect(busybox, "acc", ".HostConfig.VolumeDriver") == "local"
    assert inspect(busybox, "acc", ".HostConfig.Annotations") == {"org.example.key": "value"}
    assert busybox.ok("start", "-a", "acc") == ""


def test_unsupported_flags_are_refused_naming_themselves(busybox):
    all_refused(busybox, [(125, ("run", "--rm", *flags, "busybox", "true"), says) for flags, says in [
        (("--gpus", "all"), ("--gpus all", "not supported on this host")),
        (("--isolation", "hyperv"), "Invalid isolation: \"hyperv\" - linux only supports 'default'"),
        (("--volume-driver", "foo"), 'error looking up volume plugin foo: plugin "foo" not found'),
        (("--use-api-socket",), "--use-api-socket"),
        (("--disable-content-trust=false",), "--disable-content-trust=false"),
    ]])


# -- --env-file, -it without a terminal ------------------------------------------------------

def test_env_file_names_with_whitespace_are_refused_like_dockers(busybox, tmp_path):
    for text, bad in (("A B=1\n", "A B"), ("A =1\n", "A "), ("OK=1\nB\t=2\n", "B\t"), ("A B\n", "A B")):
        path = tmp_path / "env"
        path.write_text(text)
        busybox.fails(125, "run", "--rm", "--env-file", str(path), "busybox", "true",
                      says=f"invalid env file ({path}): variable '{bad}' contains whitespaces")
    path = tmp_path / "env"
    path.write_text("\ufeff  LEAD=x \n# comment\n\nSPACE= v \r\nFROM_HOST\n")
    out = busybox.ok("run", "--rm", "--env-file", str(path), "busybox", "env", env={**os.environ, "FROM_HOST": "h"})
    assert {"LEAD=x ", "SPACE= v ", "FROM_HOST=h"} <= set(out.splitlines())
    assert nothing_created(busybox)


def test_it_without_a_terminal_is_refused(busybox):
    busybox.fails(1, "run", "--rm", "-it", "busybox", "true", says="the input device is not a TTY")
    assert nothing_created(busybox)
    assert busybox.ok("run", "--rm", "-t", "busybox", "echo", "ok") == "ok\n"  # -t alone is fine (text mode: \r\n)
    busybox.ok("run", "-dit", "--name", "bg", "busybox", "sh")  # so is -d
    busybox.fails(1, "exec", "-it", "bg", "true", says="the input device is not a TTY")
    busybox.fails(1, "exec", "-it", "nosuch", "true", says="No such container: nosuch")
    busybox.fails(1, "exec", "--detach-keys", "bogus", "bg", "true", says="Invalid detach keys (bogus) provided")
    assert busybox.ok("exec", "--detach-keys", "ctrl-x", "bg", "echo", "ok") == "ok\n"
    busybox.ok("rm", "-f", "bg")


# -- the other commands' flags that berth refuses ------------------------------------------

def test_image_commands_take_the_hosts_platform_only(busybox, tmp_path):
    host = f"linux/{host_arch()}"
    assert busybox.ok("image", "inspect", "--platform", host, "--format", "{{.Os}}", "busybox") == "linux\n"
    assert "IMAGE" in busybox.ok("history", "--platform", host, "busybox")
    archive = str(tmp_path / "bb.tar")
    busybox.ok("save", "--platform", host, "-o", archive, "busybox")
    assert "busybox:latest" in busybox.ok("load", "--platform", host, "-i", archive)
    other = f"linux/{other_arch()}"
    for command, *args in (("image", "inspect", "busybox"), ("history", "busybox"),
                           ("save", "-o", archive, "busybox"), ("load", "-i", archive), ("rmi", "busybox"),
                           ("import", archive)):
        words = [command, args.pop(0)] if command == "image" else [command]
        busybox.fails(1, *words, "--platform", other, *args, says=f"--platform {other}: berth stores")
    assert "busybox" in busybox.ok("images")
    busybox.fails(1, "images", "--tree", says="--tree")


def test_cluster_volumes_and_checkpoints_are_refused(busybox):
    busybox.fails(1, "volume", "create", "--scope", "multi", "v1", says="--scope: cluster volumes")
    busybox.fails(1, "volume", "create", "--type", "mount", "v1", says="--type: cluster volumes")
    busybox.fails(1, "volume", "ls", "--cluster", says="--cluster: cluster volumes")
    assert busybox.ok("volume", "ls", "-q") == ""
    busybox.ok("create", "--name", "cp", "busybox", "true")
    busybox.fails(1, "start", "--checkpoint", "c1", "cp", says="--checkpoint: restoring a container")
    assert inspect(busybox, "cp", ".State.Status") == "created"
