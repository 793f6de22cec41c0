"""docker-compose 1.29 (Debian's, Python: API 1.30-1.38 through python3-docker) drives berth's
Engine API: a two-service app whose web container publishes 127.0.0.1:PORT and serves what it
read from the other service through a link and from a named volume; ps, logs, exec, restart,
then down -v leaves no container, volume or published-port rule behind."""

import os
import subprocess

from test_publish import free_ports, http_get

from conftest import ApiService, require_peer, wait_for

PROJECT = "berthapp"
# store: writes into the named volume, then serves a page of its own; web: fetches that page
# through the link (name `store`), adds the volume's file, and serves both on its port 80
COMPOSE = """version: "2.4"
services:
  store:
    image: busybox:latest
    network_mode: bridge
    volumes:
      - shared:/shared
    command: ["sh", "-c", "echo volume-data > /shared/vol.txt && mkdir -p /srv && echo linked-data > /srv/index.html
      && echo store ready && exec httpd -f -p 8080 -h /srv"]
  web:
    image: busybox:latest
    network_mode: bridge
    links:
      - store
    ports:
      - "127.0.0.1:{port}:80"
    volumes:
      - shared:/shared:ro
    command: ["sh", "-c", "until wget -q -O /tmp/linked http://store:8080/; do sleep 0.2; done; mkdir -p /www
      && cat /tmp/linked /shared/vol.txt > /www/index.html && echo web ready && exec httpd -f -p 80 -h /www"]
volumes:
  shared: {{}}
"""
PAGE = "linked-data\nvolume-data"


def compose(api: ApiService, workdir: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([require_peer("docker-compose"), "-H", api.url, "-p", PROJECT, "-f",
                           os.path.join(workdir, "docker-compose.yml"), "--ansi", "never", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=workdir, stdin=subprocess.DEVNULL,
                          env={**api.env, "COMPOSE_INTERACTIVE_NO_CLI": "1"})


def compose_ok(api: ApiService, workdir: str, *args: str) -> str:
    result = compose(api, workdir, *args)
    assert result.returncode == 0, f"docker-compose {' '.join(args)} -> {result.returncode}\n{result.stderr}"
    return result.stdout


def nft_rules_for(api: ApiService, port: int) -> list[str]:
    """The lines of this root's nftables table (its own, other roots' are not looked at) naming `port`."""
    from berth.network.nft import table_name

    table = subprocess.run(["nft", "list", "table", "ip", table_name(api.berth.root)], capture_output=True,
                           text=True).stdout  # empty once the table is gone
    return [line for line in table.splitlines() if f" {port} " in f" {line} ".replace(":", " ")]


def started_at(api: ApiService, name: str) -> str:
    return api.berth.ok("inspect", "--format", "{{.State.StartedAt}}", name).strip()


def test_compose_up_ps_logs_exec_restart_down(api):
    port = free_ports(1)[0]
    workdir = os.path.join(api.berth.base, "app")
    os.makedirs(workdir)
    with open(os.path.join(workdir, "docker-compose.yml"), "w") as f:
        f.write(COMPOSE.format(port=port))

    compose_ok(api, workdir, "up", "-d")
    wait_for(lambda: http_get("127.0.0.1", port, timeout=1.0) == PAGE, 60, f"the web page on 127.0.0.1:{port}")
    names = api.berth.ok("ps", "--format", "{{.Names}}").split()
    assert sorted(names) == [f"{PROJECT}_store_1", f"{PROJECT}_web_1"]
    assert api.berth.ok("volume", "ls", "-q").split() == [f"{PROJECT}_shared"]
    labels = api.berth.ok("inspect", "--format", '{{index .Config.Labels "com.docker.compose.service"}}',
                          f"{PROJECT}_web_1")
    assert labels.strip() == "web"

    ps = compose_ok(api, workdir, "ps")
    rows = {line.split()[0]: line for line in ps.splitlines()[2:] if line.strip()}
    assert set(rows) == {f"{PROJECT}_store_1", f"{PROJECT}_web_1"}, ps
    assert all(" Up " in row for row in rows.values()), ps
    assert f"127.0.0.1:{port}->80/tcp" in rows[f"{PROJECT}_web_1"], ps

    assert "store ready" in compose_ok(api, workdir, "logs", "--no-color", "store")
    assert compose_ok(api, workdir, "exec", "-T", "web", "cat", "/www/index.html").strip() == PAGE
    result = compose(api, workdir, "exec", "-T", "store", "sh", "-c", "exit 3")
    assert result.returncode == 3, result.stderr

    before = {name: started_at(api, name) for name in names}
    # one service after the other: restarted together, web could start while store is down, which
    # its link refuses as docker's does ("Cannot link to a non running container"; compose 1.29
    # then says "error" and still exits 0)
    compose_ok(api, workdir, "restart", "-t", "1", "store")
    compose_ok(api, workdir, "restart", "-t", "1", "web")
    after = {name: started_at(api, name) for name in names}
    assert all(after[name] != before[name] for name in names), (before, after)
    # a new web process fetched through the link again; the volume kept its data
    wait_for(lambda: http_get("127.0.0.1", port, timeout=1.0) == PAGE, 60, "the web page after the restart")
    assert nft_rules_for(api, port), "the published port has no nftables rule while web runs"

    compose_ok(api, workdir, "down", "-v", "-t", "1")
    assert api.berth.ok("ps", "-aq") == ""
    assert api.berth.container_ids() == []
    assert api.berth.ok("volume", "ls", "-q") == ""
    assert nft_rules_for(api, port) == []
    assert http_get("127.0.0.1", port, timeout=1.0) is None
    assert compose_ok(api, workdir, "ps", "-q").strip() == ""
