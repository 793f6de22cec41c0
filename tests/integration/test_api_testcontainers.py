"""testcontainers (Python, 4.x, over docker-py) drives berth's Engine API: a DockerContainer of
busybox with a command, wait_for_logs, its exposed port's mapping read back and reached, then
stop and removal. Ryuk (the reaper container) is off: it needs an image that cannot be built here."""

from test_publish import http_get

from conftest import wait_for

SERVE = "mkdir -p /www && echo contained > /www/index.html && echo serving now && exec httpd -f -p 80 -h /www"


def test_a_testcontainers_container_runs_waits_maps_and_is_removed(api, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", api.url)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    from testcontainers.core.container import DockerContainer  # lazy: reads its environment when first used
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy
    from testcontainers.core.waiting_utils import wait_for_logs

    container = DockerContainer("busybox:latest").with_command(["sh", "-c", SERVE]).with_exposed_ports(80)
    try:
        container.start()
        wait_for_logs(container, LogMessageWaitStrategy("serving now"), timeout=60)  # a bare string is deprecated
        container_id = container.get_wrapped_container().id
        assert api.berth.ok("inspect", "--format", "{{.State.Running}}", container_id).strip() == "true"
        labels = api.berth.ok("inspect", "--format", "{{json .Config.Labels}}", container_id)
        assert '"org.testcontainers":"true"' in labels.replace(" ", "")

        # the docker host, or where testcontainers finds /.dockerenv (as on this kind of machine)
        # the container's gateway: the bridge's address, which berth made
        host, port = container.get_container_host_ip(), int(container.get_exposed_port(80))
        gateway = api.berth.ok("inspect", "--format", "{{.NetworkSettings.Gateway}}", container_id).strip()
        assert host in ("localhost", gateway), host
        address = "127.0.0.1" if host == "localhost" else host
        published = api.berth.ok("port", container_id, "80/tcp").split()
        assert any(line.endswith(f":{port}") for line in published), published
        wait_for(lambda: http_get(address, port, timeout=1.0) == "contained", 30, f"httpd on {address}:{port}")

        container.get_wrapped_container().stop(timeout=1)
        assert api.berth.ok("inspect", "--format", "{{.State.Status}}", container_id).strip() == "exited"
        assert http_get(address, port, timeout=1.0) is None
    finally:
        container.stop()  # testcontainers' stop: remove(force=True, v=True)
    assert api.berth.ok("ps", "-aq") == ""
    assert api.berth.container_ids() == []
