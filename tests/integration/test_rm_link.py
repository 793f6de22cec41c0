"""`rm --link /PARENT/ALIAS` (docker's legacy links) removes the link, never a container: from
berth's CLI and through the Engine API from docker's CLI, with docker's errors."""

import json


def links(b, name: str):
    return json.loads(b.ok("inspect", "--format", "{{json .HostConfig.Links}}", name))


def test_rm_link_removes_the_link_only(api):
    b = api.berth
    b.ok("create", "--name", "db", "busybox", "true")
    b.ok("create", "--name", "web", "--link", "db:data", "--link", "db:store", "busybox", "true")
    assert len(links(b, "web")) == 2
    assert b.ok("rm", "--link", "/web/data") == "/web/data\n"
    assert [entry.rpartition("/")[2] for entry in links(b, "web")] == ["store"]
    assert sorted(b.ok("ps", "-a", "--format", "{{.Names}}").split()) == ["db", "web"]
    b.fails(1, "rm", "--link", "/web/data", says="No such container: web/data")
    b.fails(1, "rm", "--link", "web", says="Conflict, cannot remove the default link name of the container")
    # the same through the API, from docker's CLI
    assert api.docker_ok("rm", "--link", "/web/store") == "/web/store\n"
    assert links(b, "web") is None
    result = api.docker("rm", "--link", "/web/store")
    assert result.returncode == 1 and "No such container: web/store" in result.stderr
    assert sorted(b.ok("ps", "-a", "--format", "{{.Names}}").split()) == ["db", "web"]
    b.ok("rm", "web", "db")
