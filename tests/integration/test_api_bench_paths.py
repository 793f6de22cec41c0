"""What bench/api.py times, as its clients see it: the docker CLI's `run --rm` through berth's
socket (its exit status carried through docker's wait condition=removed, the container gone),
docker-py's containers.run(remove=True) output, one-shot stats and the container list."""

import docker


def test_docker_run_rm_carries_the_exit_status_and_removes_the_container(api):
    for command, code in ((["true"], 0), (["sh", "-c", "exit 3"], 3)):
        for _ in range(3):  # the removal races the wait: more than once
            result = api.docker("run", "--rm", "busybox", *command)
            assert result.returncode == code, result.stderr
            assert "error waiting for container" not in result.stderr
    assert api.berth.ok("ps", "-aq") == ""


def test_docker_py_run_stats_and_list(api):
    client = docker.DockerClient(base_url=api.url, version="1.41")
    try:
        assert client.containers.run("busybox", ["echo", "ran"], remove=True) == b"ran\n"
        sleeper = client.containers.run("busybox", ["sleep", "1d"], detach=True)
        stats = sleeper.stats(stream=False, one_shot=True)
        assert stats["id"] == sleeper.id and "memory_stats" in stats and "cpu_stats" in stats
        for n in range(5):
            api.berth.ok("create", "--name", f"listed{n}", "busybox", "true")
        names = {c.name for c in client.containers.list(all=True)}
        assert names == {sleeper.name} | {f"listed{n}" for n in range(5)}
        sleeper.remove(force=True)
    finally:
        client.close()
