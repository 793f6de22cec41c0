"""`berth audit`: the book's archetypes (network none/bridge/container:<x>/host; IPC
shareable/container/host; users; capabilities; --privileged; seccomp; devices; limits;
read-only rootfs; host mounts) made as real containers, their reports as text, JSON and
templates, where the running ones stand checked against the kernel's namespaces, --strict
with policies that pass and fail, and bad input."""

import json
import os
import re

import pytest

from conftest import refused


def reports(b, *args: str) -> dict:
    """The JSON reports of `berth audit`, by container name."""
    return {r["Name"]: r for r in json.loads(b.ok("audit", "--format", "json", *args))}


def table_rows(text: str, name: str) -> list[list[str]]:
    """The AREA/SETTING/STATUS/FLAG rows of container `name` in audit's text output."""
    block = re.search(rf"^{re.escape(name)} \([0-9a-f]{{12}}\).*?(?=^\S|\Z)", text, re.M | re.S)
    assert block, f"no report of {name} in:\n{text}"
    lines = block.group(0).splitlines()
    header = next(i for i, line in enumerate(lines) if line.split() == ["AREA", "SETTING", "STATUS", "FLAG"])
    rows = []
    for line in lines[header + 1:]:
        if not line.startswith("  ") or line.startswith("    ") or line.strip().endswith(":"):
            break
        rows.append(re.split(r"\s{3,}", line.strip()))
    return rows


def row(text: str, name: str, area: str, setting_start: str = "") -> list[str]:
    found = [r for r in table_rows(text, name) if r[0] == area and r[1].startswith(setting_start)]
    assert found, f"no {area} row of {name} in:\n{text}"
    return found[0]


def weakenings(report: dict) -> dict:
    return {w["Flag"]: w for w in report["Weakenings"]}


def pid_of(b, name: str) -> int:
    return int(b.ok("inspect", "--format", "{{.State.Pid}}", name))


def ns(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_network_archetypes(busybox):
    b = busybox
    b.ok("run", "-d", "--name", "target", "busybox", "sleep", "300")
    b.ok("run", "-d", "--name", "closed", "--network", "none", "busybox", "sleep", "300")
    b.ok("run", "-d", "--name", "open", "--network", "host", "--expose", "8080", "busybox", "sleep", "300")
    b.ok("run", "-d", "--name", "joined", "--network", "container:target", "busybox", "sleep", "300")
    b.ok("create", "--name", "published", "-p", "8080:80", "busybox")
    text = b.ok("audit")
    assert row(text, "published", "ports") == ["ports", "0.0.0.0:8080->80/tcp", "default", "-p 8080:80"]
    assert row(text, "target", "ports")[:3] == ["ports", "none", "default"]
    assert row(text, "closed", "network") == ["network", "closed", "stronger", "--network none"]
    assert row(text, "target", "network")[:3] == ["network", "bridged (bridge)", "default"]
    assert row(text, "open", "network") == ["network", "open (host)", "weaker", "--network host"]
    assert row(text, "joined", "network") == ["network", "joined (target)", "weaker", "--network container:target"]
    assert "    --network host: the host's network stack" in text
    assert "      stronger: -p 8080:8080" in text  # what it exposes, published from the default bridge

    found = reports(b)
    assert {n: r["Ladder"]["Network"] for n, r in found.items()} == \
        {"closed": "closed", "target": "bridged", "open": "open", "joined": "joined", "published": "bridged"}
    assert [c["Stronger"] for c in found["published"]["Checks"] if c["Area"] == "ports"] == \
        ["-p 127.0.0.1:8080:80, when only the host connects to it"]
    # what the audit says is what the kernel did
    assert ns(pid_of(b, "open"), "net") == ns("self", "net")
    assert ns(pid_of(b, "joined"), "net") == ns(pid_of(b, "target"), "net")
    assert ns(pid_of(b, "closed"), "net") not in (ns("self", "net"), ns(pid_of(b, "target"), "net"))


def test_ipc_pid_and_uts_archetypes(busybox):
    b = busybox
    b.ok("run", "-d", "--name", "producer", "--ipc", "shareable", "busybox", "sleep", "300")
    b.ok("run", "-d", "--name", "consumer", "--ipc", "container:producer", "busybox", "sleep", "300")
    b.ok("run", "-d", "--name", "hostly", "--ipc", "host", "--pid", "host", "--uts", "host", "busybox", "sleep", "300")
    b.ok("create", "--name", "lonely", "--ipc", "shareable", "busybox")
    text = b.ok("audit", "producer", "consumer", "hostly", "lonely")
    assert row(text, "producer", "ipc") == ["ipc", "shareable", "weaker", "--ipc shareable"]
    assert row(text, "consumer", "ipc") == ["ipc", "shared (producer)", "weaker", "--ipc container:producer"]
    assert row(text, "hostly", "ipc") == ["ipc", "host", "weaker", "--ipc host"]
    assert row(text, "hostly", "pid") == ["pid", "host", "weaker", "--pid host"]
    assert row(text, "hostly", "uts") == ["uts", "host", "weaker", "--uts host"]
    assert row(text, "consumer", "pid") == ["pid", "private", "default"]

    found = reports(b)
    assert "joined by consumer" in weakenings(found["producer"])["--ipc shareable"]["Why"]
    assert weakenings(found["lonely"])["--ipc shareable"]["Stronger"].startswith("--ipc private")
    assert [found[n]["Ladder"]["IPC"] for n in ("producer", "consumer", "hostly", "lonely")] == \
        ["shareable", "shared", "host", "shareable"]
    hostly = pid_of(b, "hostly")
    assert ns(hostly, "ipc") == ns("self", "ipc") and ns(hostly, "pid") == ns("self", "pid")
    assert ns(hostly, "uts") == ns("self", "uts")
    assert ns(pid_of(b, "consumer"), "ipc") == ns(pid_of(b, "producer"), "ipc") != ns("self", "ipc")


def test_users(busybox):
    b = busybox
    b.import_busybox(b.busybox_tar, "appuser:1", 'CMD ["sh"]', "USER nobody")
    b.ok("run", "-d", "--name", "nobody", "-u", "nobody", "busybox", "sleep", "300")
    b.ok("create", "--name", "root", "busybox")
    b.ok("create", "--name", "image-user", "appuser:1")
    b.ok("create", "--name", "back-to-root", "-u", "0", "appuser:1")
    text = b.ok("audit")
    assert row(text, "nobody", "user") == ["user", "nobody", "stronger", "--user nobody"]
    assert row(text, "root", "user") == ["user", "root", "weaker", "no --user"]
    assert row(text, "image-user", "user") == ["user", "nobody", "default"]
    assert row(text, "back-to-root", "user") == ["user", "0", "weaker", "--user 0"]
    found = reports(b)
    assert weakenings(found["back-to-root"])["--user 0"]["Stronger"] == "leave out --user: the image runs as nobody"
    assert [found[n]["Ladder"]["Root"] for n in ("nobody", "root", "image-user", "back-to-root")] == \
        [False, True, False, True]
    # the running one's uid is what the audit says
    with open(f"/proc/{pid_of(b, 'nobody')}/status") as f:
        assert re.search(r"^Uid:\s+65534\s", f.read(), re.M)
    assert found["nobody"]["Ladder"]["Uid"] == 65534 and found["root"]["Ladder"]["Uid"] is None


def test_a_user_name_that_is_uid_0_in_the_image_is_root(busybox):
    b = busybox
    b.ok("run", "--name", "maker", "busybox", "sh", "-c", "echo toor:x:0:0:root:/root:/bin/sh >> /etc/passwd")
    b.ok("commit", "maker", "aliased:1")
    b.ok("run", "-d", "--name", "toor", "-u", "toor", "aliased:1", "sleep", "300")
    text = b.ok("audit", "toor")
    assert row(text, "toor", "user") == ["user", "toor (uid 0)", "weaker", "--user toor"]
    assert "    --user toor: runs as root: toor is uid 0 in the container's /etc/passwd" in text
    ladder = reports(b, "toor")["toor"]["Ladder"]
    assert ladder["Root"] and ladder["Uid"] == 0


def test_capabilities_and_privileged(busybox):
    b = busybox
    b.ok("run", "-d", "--name", "admin", "--cap-add", "sys_admin", "--cap-drop", "NET_RAW", "--cap-add", "CHOWN",
         "busybox", "sleep", "300")
    b.ok("create", "--name", "privileged", "--privileged", "busybox")
    b.ok("create", "--name", "minimal", "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", "busybox")
    text = b.ok("audit", "admin", "privileged", "minimal")
    assert row(text, "admin", "capabilities", "+SYS") == ["capabilities", "+SYS_ADMIN", "weaker",
                                                          "--cap-add SYS_ADMIN"]
    assert row(text, "admin", "capabilities", "+CHOWN")[2] == "default"  # docker's default set: no effect
    assert row(text, "admin", "capabilities", "-") == ["capabilities", "-NET_RAW", "stronger", "--cap-drop NET_RAW"]
    for area in ("privileged", "capabilities", "seccomp", "apparmor", "devices"):
        assert row(text, "privileged", area)[2:] == ["weaker", "--privileged"], area
    assert row(text, "minimal", "capabilities", "-ALL")[2] == "stronger"

    found = reports(b, "admin", "privileged", "minimal")
    assert list(weakenings(found["privileged"])).count("--privileged") == 1
    assert found["privileged"]["Ladder"]["Privileged"] and found["privileged"]["Ladder"]["Seccomp"] == "unconfined"
    assert not [f for f in weakenings(found["minimal"]) if "cap" in f]
    assert found["admin"]["Ladder"]["CapAdd"] == ["CHOWN", "SYS_ADMIN"]
    # the kernel agrees: CAP_SYS_ADMIN (21) held, CAP_NET_RAW (13) not
    with open(f"/proc/{pid_of(b, 'admin')}/status") as f:
        bounding = int(re.search(r"^CapBnd:\s+([0-9a-f]+)", f.read(), re.M).group(1), 16)
    assert bounding & (1 << 21) and not bounding & (1 << 13)


def test_seccomp_and_no_new_privileges(busybox, tmp_path):
    b = busybox
    profile = tmp_path / "allow.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"}]}))
    b.ok("run", "-d", "--name", "unconfined", "--security-opt", "seccomp=unconfined", "busybox", "sleep", "300")
    b.ok("create", "--name", "custom", "--security-opt", f"seccomp={profile}", "busybox")
    b.ok("create", "--name", "nnp", "--security-opt", "no-new-privileges", "busybox")
    text = b.ok("audit", "unconfined", "custom", "nnp")
    assert row(text, "unconfined", "seccomp") == ["seccomp", "unconfined", "weaker",
                                                  "--security-opt seccomp=unconfined"]
    assert row(text, "custom", "seccomp") == ["seccomp", "custom", "weaker", "--security-opt seccomp=PROFILE"]
    assert row(text, "nnp", "seccomp")[:3] == ["seccomp", "default", "default"]
    assert row(text, "nnp", "no-new-privileges") == ["no-new-privileges", "yes", "stronger",
                                                     "--security-opt no-new-privileges"]
    with open(f"/proc/{pid_of(b, 'unconfined')}/status") as f:
        assert re.search(r"^Seccomp:\s+0$", f.read(), re.M)  # the kernel: no filter


def test_devices_limits_rootfs_and_mounts(busybox, tmp_path):
    b = busybox
    b.ok("create", "--name", "device", "--device", "/dev/zero:/dev/z", "busybox")
    b.ok("run", "-d", "--name", "limited", "-m", "64m", "--cpus", "0.5", "--pids-limit", "50", "--read-only",
         "busybox", "sleep", "300")
    b.ok("create", "--name", "mounts", "-v", "/:/host:ro", "-v", "data:/data", "-v", f"{tmp_path}:/work",
         "-v", "/var/run/docker.sock:/var/run/docker.sock", "busybox")
    text = b.ok("audit", "device", "limited", "mounts")
    assert row(text, "device", "devices") == ["devices", "/dev/zero", "weaker", "--device /dev/zero:/dev/z"]
    assert row(text, "device", "memory") == ["memory", "unlimited", "weaker", "no --memory"]
    assert row(text, "device", "cpu") == ["cpu", "unlimited", "weaker", "no --cpus"]
    assert row(text, "device", "rootfs") == ["rootfs", "writable", "weaker", "no --read-only"]
    assert row(text, "limited", "memory") == ["memory", "64MiB", "stronger", "--memory 64MiB"]
    assert row(text, "limited", "cpu") == ["cpu", "0.5 CPUs", "stronger", "--cpus 0.5"]
    assert row(text, "limited", "pids") == ["pids", "50", "stronger", "--pids-limit 50"]
    assert row(text, "limited", "rootfs") == ["rootfs", "read-only", "stronger", "--read-only"]
    assert row(text, "mounts", "mounts", "bind /:") == ["mounts", "bind /:/host (ro)", "weaker", "-v /:/host:ro"]
    assert row(text, "mounts", "mounts", "volume") == ["mounts", "volume data:/data", "default", "-v data:/data"]
    assert "    -v /:/host:ro: the host's whole filesystem (read-only)" in text
    assert "    -v /var/run/docker.sock:/var/run/docker.sock: a container engine's API socket" in text
    assert f"      stronger: -v {tmp_path}:/work:ro, when it only reads" in text
    assert "      stronger: --memory SIZE" in text

    found = reports(b, "device", "limited", "mounts")
    limited = found["limited"]["Ladder"]
    assert (limited["Memory"], limited["Cpus"], limited["PidsLimit"], limited["ReadonlyRootfs"]) == \
        (64 << 20, 0.5, 50, True)
    assert sorted(found["mounts"]["Ladder"]["HostMounts"]) == ["/:/host:ro", f"{tmp_path}:/work",
                                                                "/var/run/docker.sock:/var/run/docker.sock"]
    assert found["device"]["Ladder"]["Devices"] == ["/dev/zero:/dev/z"]
    # the running one's root filesystem is read-only indeed
    refused(b("exec", "limited", "touch", "/x"), 1, "Read-only file system")


def test_json_shape_and_templates(busybox):
    b = busybox
    b.ok("create", "--name", "web", "--network", "host", "busybox")
    b.ok("create", "--name", "quiet", "--network", "none", "busybox")
    out = json.loads(b.ok("audit", "--format", "json"))
    assert [r["Name"] for r in out] == ["quiet", "web"]  # every container, by name
    web = out[1]
    assert set(web) == {"Id", "Name", "Image", "Ladder", "Checks", "Weakenings", "Violations"}
    assert len(web["Id"]) == 64 and web["Image"] == "busybox" and web["Violations"] == []
    assert set(web["Ladder"]) == {"Network", "NetworkMode", "IPC", "PID", "UTS", "User", "Root", "Uid", "Userns",
                                  "Privileged", "CapAdd", "CapDrop", "Seccomp", "AppArmor", "NoNewPrivileges",
                                  "Devices", "Memory", "Cpus", "PidsLimit", "ReadonlyRootfs", "HostMounts"}
    for check in web["Checks"]:
        assert set(check) == {"Area", "Setting", "Status", "Flag", "Why", "Stronger"}
    for weakening in web["Weakenings"]:
        assert set(weakening) == {"Flag", "Area", "Why", "Stronger"} and weakening["Flag"] and weakening["Why"]
    assert [c["Area"] for c in web["Checks"]][:6] == ["network", "ipc", "pid", "uts", "user", "privileged"]

    out = b.ok("audit", "--format", "{{.Name}} {{.Ladder.Network}} {{len .Weakenings}}", "web", "quiet")
    assert out == "web open 6\nquiet closed 5\n"
    out = b.ok("audit", "-f", "{{range .Weakenings}}{{.Flag}};{{end}}", "web")
    assert out.startswith("--network host;no --user;")
    assert json.loads(b.ok("audit", "--format", "json", "web"))[0]["Name"] == "web"
    assert b.ok("audit", "--format", "table", "web") == b.ok("audit", "web")
    out = b.ok("audit", "--format", "table {{.Name}}\t{{.Ladder.Network}}\t{{.Ladder.User}}")
    assert [line.split() for line in out.splitlines()] == [["NAME", "NETWORK", "USER"], ["quiet", "closed", "root"],
                                                           ["web", "open", "root"]]
    refused(b("audit", "--format", "table {{.Name}}\t{{.Nope}}"), 1, 'map has no entry for key "Nope"')


def test_strict_policies(busybox, tmp_path):
    b = busybox
    b.ok("create", "--name", "tight", "-u", "nobody", "--network", "none", "--cap-drop", "ALL", "-m", "32m",
         "--cpus", "1", "--pids-limit", "20", "--read-only", "--security-opt", "no-new-privileges", "busybox")
    b.ok("create", "--name", "loose", "--network", "host", "--cap-add", "NET_ADMIN", "-v", "/:/host", "busybox")
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({
        "allowed-networks": ["none", "bridge"], "max-cap-add": 0, "forbid-privileged": True,
        "require-non-root": True, "require-read-only": True, "require-memory-limit": True,
        "forbid-host-mounts": True, "require-no-new-privileges": True}))

    out = b.ok("audit", "--strict", "--policy", str(policy), "tight")
    assert "  Policy: no violation" in out

    result = b("audit", "--strict", "--policy", str(policy), "tight", "loose")
    refused(result, 1, "policy violations in 1 of 2 containers")
    violations = result.stdout.split("  Policy violations:\n")[1].splitlines()
    assert [v.strip().split(":")[0] for v in violations] == [
        "--network host", "--cap-add NET_ADMIN", "no --user", "no --read-only", "no --memory", "-v /",
        "no --security-opt no-new-privileges"]
    assert f"(allowed-networks in policy file {policy})" in violations[0]

    found = json.loads(b("audit", "--strict", "--policy", str(policy), "--format", "json").stdout)
    assert {r["Name"]: len(r["Violations"]) for r in found} == {"loose": 7, "tight": 0}

    # a policy alone reports; --strict makes a violation fail
    assert "Policy violations:" in b.ok("audit", "--policy", str(policy), "loose")
    # --strict alone: no weakening at all
    b.ok("audit", "--strict", "tight")
    refused(b("audit", "--strict", "loose"), 1, "policy violations")


@pytest.mark.parametrize("content, says", [
    ("{", "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2"),
    ('{"allowed-network": ["none"]}', 'unknown policy key "allowed-network"'),
    ('{"forbid-privileged": "yes"}', "forbid-privileged must be true or false, not a string"),
    ('["none"]', "a policy is a JSON object, not a list"),
])
def test_bad_policy_files(busybox, tmp_path, content, says):
    busybox.ok("create", "--name", "web", "busybox")
    policy = tmp_path / "policy.json"
    policy.write_text(content)
    result = busybox("audit", "--strict", "--policy", str(policy))
    err = refused(result, 1, f"Error: policy file {policy}: {says}")
    assert len(err.splitlines()) == 1 and result.stdout == ""


def test_errors(busybox, tmp_path):
    b = busybox
    assert b.ok("audit") == "" and json.loads(b.ok("audit", "--format", "json")) == []
    refused(b("audit", "nope"), 1, "Error: No such container: nope")
    b.ok("create", "--name", "web", "busybox")
    result = b("audit", "--format", "{{.Name}}", "nope", "web")
    refused(result, 1, "Error: No such container: nope")
    assert result.stdout == "web\n"  # docker inspect's way: the others still reported
    missing = refused(b("audit", "--policy", str(tmp_path / "missing.json")), 1, "no such file or directory")
    assert len(missing.splitlines()) == 1
    refused(b("audit", "--policy", str(tmp_path)), 1, "is a directory")
    refused(b("audit", "--bogus"), 125, ("unknown flag: --bogus", "See 'berth audit --help'."))
    refused(b("audit", "--format", "{{.Nope}}", "web"), 1, "template parsing error")
    assert "berth audit [OPTIONS] [CONTAINER...]" in b.ok("audit", "--help")


def test_mount_flags_as_given(busybox, tmp_path):
    b = busybox
    b.ok("create", "--name", "mounted", "--mount", f"type=bind,source={tmp_path},target=/src,readonly",
         "--mount", "type=volume,source=v2,target=/v2", "busybox")
    b.ok("create", "--name", "heir", "--volumes-from", "mounted", "busybox")
    text = b.ok("audit", "mounted", "heir")
    assert row(text, "mounted", "mounts", "bind") == [
        "mounts", f"bind {tmp_path}:/src (ro)", "weaker", f"--mount type=bind,source={tmp_path},target=/src,readonly"]
    assert row(text, "mounted", "mounts", "volume") == ["mounts", "volume v2:/v2", "default",
                                                        "--mount type=volume,source=v2,target=/v2"]
    assert row(text, "heir", "mounts", "bind") == ["mounts", f"bind {tmp_path}:/src (ro)", "weaker",
                                                   "--volumes-from mounted"]
    heir = reports(b, "heir")["heir"]
    assert weakenings(heir)["--volumes-from mounted"]["Stronger"] == \
        "a named volume (-v NAME:/src) when it shares nothing with the host"


def test_escape_sequences_in_a_path_never_reach_the_terminal(busybox, tmp_path):
    sly = tmp_path / "data\x1b[1A\x1b[2Kx"
    sly.mkdir()
    busybox.ok("create", "--name", "sly", "-v", f"{sly}:/data", "busybox")
    text = busybox.ok("audit", "sly")
    assert "\x1b" not in text and f"{tmp_path}/data\\x1b[1A\\x1b[2Kx:/data" in text
    assert reports(busybox, "sly")["sly"]["Ladder"]["HostMounts"] == [f"{sly}:/data"]  # JSON keeps it, escaped
