"""After a reboot, containers come back as they do when dockerd starts: `berth system
restart-policies` (run at boot by the shipped berth-restart.service) starts each container
its restart policy says should run. The reboot is performed on this test's containers: their
supervisors and processes are SIGKILLed and the run root (a tmpfs at boot) is emptied."""

import json
import os
import shutil
import signal

from berth.engine.procs import same_process
from conftest import wait_for

SLEEP = ("busybox", "sleep", "300")


def reboot(b, ids: list[str]) -> None:
    """What a reboot does to this root's containers: every process gone, the run root empty."""
    for container_id in ids:
        try:
            with open(os.path.join(b.run_root, "containers", container_id, "state.json")) as f:
                recorded = json.load(f)
        except FileNotFoundError:
            continue  # not running
        for ident in (recorded["monitor"], recorded["pid"]):
            if same_process(ident):
                os.kill(ident[0], signal.SIGKILL)
        wait_for(lambda ids=(recorded["pid"], recorded["monitor"]): not any(map(same_process, ids)),
                 what="the container and its supervisor to die")
    shutil.rmtree(os.path.join(b.run_root, "containers"))


def status(b, name: str) -> str:
    return b.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}", name).strip()


def test_restart_policies_after_a_reboot(busybox):
    b = busybox
    ids = {}
    for name, policy in (("always", "always"), ("always-stopped", "always"), ("unless", "unless-stopped"),
                         ("unless-stopped", "unless-stopped"), ("failing", "on-failure:3"), ("none", "no")):
        ids[name] = b.ok("run", "-d", "--network", "none", "--name", name, "--restart", policy, *SLEEP).strip()
    ids["done"] = b.ok("run", "-d", "--network", "none", "--name", "done", "--restart", "on-failure",
                       "busybox", "true").strip()
    ids["created"] = b.ok("create", "--network", "none", "--name", "created", "--restart", "always", *SLEEP).strip()
    assert b.ok("wait", "done") == "0\n"
    b.ok("stop", "-t", "0", "always-stopped", "unless-stopped")

    reboot(b, list(ids.values()))
    assert sorted(b.ok("system", "restart-policies").split()) == \
        sorted(["always", "always-stopped", "unless", "failing", "created"])

    for name in ("always", "always-stopped", "unless", "failing", "created"):
        assert status(b, name).startswith("running 0"), name
    assert status(b, "unless-stopped").startswith("exited 137")
    assert status(b, "none") == "exited 255 0"  # nobody saw its end: docker's unknown status
    assert status(b, "done") == "exited 0 0"
    assert b.ok("exec", "failing", "true") == ""
    # a second run (no reboot in between) starts nothing: they all run or should not
    assert b.ok("system", "restart-policies") == ""
    b.ok("rm", "-f", *ids)


def test_restart_policies_takes_no_arguments(busybox):
    busybox.fails(1, "system", "restart-policies", "extra", says="accepts no arguments")
