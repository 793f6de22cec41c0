"""The volume and network endpoints of the Engine API, driven by the real docker CLI (28 and
Debian's 20.10) and docker-py, checked against the berth CLI's view of the same root."""

import json

import pytest

from conftest import ApiService, free_test_subnet

docker_py = pytest.importorskip("docker")


def fails_with(api: ApiService, *args: str, says: str, client: str = ApiService.DOCKER_28) -> None:
    result = api.docker(*args, client=client)
    assert result.returncode == 1, f"docker {' '.join(args)} -> {result.returncode}"
    assert result.stderr.startswith("Error response from daemon: ") and says in result.stderr, result.stderr


@pytest.mark.parametrize("cli", [ApiService.DOCKER_28, ApiService.DOCKER_20])
def test_volume_create_ls_inspect_rm(api, cli):
    assert api.docker_ok("volume", "create", "--label", "team=a", "vol1", client=cli) == "vol1\n"
    anonymous = api.docker_ok("volume", "create", client=cli).strip()
    assert len(anonymous) == 64
    api.docker_ok("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "vol2", client=cli)
    assert sorted(api.docker_ok("volume", "ls", "-q", client=cli).split()) == sorted([anonymous, "vol1", "vol2"])
    assert api.docker_ok("volume", "ls", "-q", "--filter", "label=team=a", client=cli).split() == ["vol1"]
    assert api.docker_ok("volume", "ls", "-q", "-f", "name=vol", "-f", "dangling=true", client=cli).split() \
        == ["vol1", "vol2"]
    assert json.loads(api.docker_ok("volume", "inspect", "vol1", client=cli)) \
        == json.loads(api.berth.ok("volume", "inspect", "vol1"))
    assert api.docker_ok("volume", "inspect", "--format", "{{.Options.type}} {{.Driver}}", "vol2",
                         client=cli) == "tmpfs local\n"
    missing = api.docker("volume", "inspect", "nope", client=cli)  # 20.10 words a 404 itself
    assert missing.returncode == 1 and ("get nope: no such volume" in missing.stderr
                                        or "Error: No such volume: nope" in missing.stderr), missing.stderr
    fails_with(api, "volume", "create", "-d", "other", "x1", client=cli, says="plugin \"other\" not found")
    fails_with(api, "volume", "create", "bad/name", client=cli, says='"bad/name" includes invalid characters')

    container = api.berth.ok("create", "-v", "vol1:/data", "busybox", "true").strip()
    fails_with(api, "volume", "rm", "vol1", client=cli, says=f"remove vol1: volume is in use - [{container}]")
    assert api.docker_ok("volume", "ls", "-q", "-f", "dangling=false", client=cli).split() == ["vol1"]
    api.berth.ok("rm", container)
    assert api.docker_ok("volume", "rm", "vol1", "vol2", anonymous, client=cli).split() \
        == ["vol1", "vol2", anonymous]
    assert api.berth.ok("volume", "ls", "-q") == ""
    api.docker_ok("volume", "rm", "-f", "nope", client=cli)


def test_volume_prune_keeps_named_volumes_from_api_1_42(api):
    api.berth.ok("volume", "create", "named")
    anonymous = api.berth.ok("volume", "create").strip()
    api.berth.ok("volume", "create", "--label", "keep=1", "kept")
    out = api.docker_ok("volume", "prune", "-f")
    assert f"Deleted Volumes:\n{anonymous}\n" in out and "named" not in out
    assert sorted(api.berth.ok("volume", "ls", "-q").split()) == ["kept", "named"]
    out = api.docker_ok("volume", "prune", "-f", "--all", "--filter", "label!=keep")
    assert "named" in out and "kept" not in out
    api.berth.ok("volume", "create", "old-client")
    out = api.docker_ok("volume", "prune", "-f", client=ApiService.DOCKER_20)  # API 1.41: every unused one
    assert "old-client" in out and "kept" in out
    assert api.berth.ok("volume", "ls", "-q") == ""


def test_docker_py_volumes(api):
    docker = docker_py.DockerClient(base_url=api.url)
    volume = docker.volumes.create("pyvol", labels={"by": "py"}, driver_opts={"type": "tmpfs", "device": "tmpfs"})
    assert volume.name == "pyvol" and volume.attrs["Labels"] == {"by": "py"}
    assert volume.attrs["Mountpoint"] == json.loads(api.berth.ok("volume", "inspect", "pyvol"))[0]["Mountpoint"]
    assert [v.name for v in docker.volumes.list()] == ["pyvol"]
    assert [v.name for v in docker.volumes.list(filters={"label": "by=nobody"})] == []
    assert docker.volumes.get("pyvol").attrs["Options"] == {"device": "tmpfs", "type": "tmpfs"}
    with pytest.raises(docker_py.errors.NotFound):
        docker.volumes.get("nope")
    bad = docker.api._post_json(docker.api._url("/volumes/create"), data={"Name": "x", "Labels": ["not a map"]})
    assert bad.status_code == 400 and "Labels" in bad.json()["message"]  # docker-py checks that itself
    volume.remove()
    anonymous = docker.volumes.create()
    assert docker.volumes.prune() == {"VolumesDeleted": [anonymous.name], "SpaceReclaimed": 0}
    assert docker.volumes.list() == []


def test_networks_are_the_predefined_ones(api):
    table = api.docker_ok("network", "ls").splitlines()
    assert [line.split()[1:] for line in table[1:]] == [["bridge", "bridge", "local"], ["host", "host", "local"],
                                                         ["none", "null", "local"]]
    assert api.docker_ok("network", "ls", "-q", "--no-trunc") == api.berth.ok("network", "ls", "-q", "--no-trunc")
    assert api.docker_ok("network", "ls", "--format", "{{.Name}}", "-f", "driver=null") == "none\n"
    assert api.docker_ok("network", "ls", "-q", client=ApiService.DOCKER_20).split() \
        == api.berth.ok("network", "ls", "-q").split()
    for name in ("bridge", "host", "none"):
        assert json.loads(api.docker_ok("network", "inspect", name)) \
            == json.loads(api.berth.ok("network", "inspect", name))
    subnet = json.loads(api.berth.ok("network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]["Subnet"]
    assert api.docker_ok("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", "bridge") == subnet + "\n"
    fails_with(api, "network", "inspect", "nope", says="network nope not found")

    fails_with(api, "network", "rm", "bridge", says="bridge is a pre-defined network and cannot be removed")
    fails_with(api, "network", "create", "host", says="network with name host already exists")
    container = api.berth.ok("create", "busybox", "true").strip()
    fails_with(api, "network", "connect", "host", container, says="connected to host network")
    fails_with(api, "network", "disconnect", "nope", container, says="network nope not found")
    api.docker_ok("network", "prune", "-f")
    api.berth.ok("rm", container)


def test_docker_py_networks(api):
    docker = docker_py.DockerClient(base_url=api.url)
    networks = {n.name: n for n in docker.networks.list()}
    assert sorted(networks) == ["bridge", "host", "none"]
    assert networks["host"].attrs["Driver"] == "host" and docker.networks.get("none").attrs["Driver"] == "null"
    assert [n.name for n in docker.networks.list(names=["host"])] == ["host"]
    assert docker.networks.prune() == {"NetworksDeleted": []}
    mine = docker.networks.create("mine", labels={"k": "v"},
                                  ipam=docker_py.types.IPAMConfig(pool_configs=[
                                      docker_py.types.IPAMPool(subnet=free_test_subnet())]))
    assert docker.networks.get("mine").attrs["Labels"] == {"k": "v"}
    with pytest.raises(docker_py.errors.APIError) as err:
        docker.networks.create("mine")
    assert err.value.status_code == 409
    assert docker.networks.prune() == {"NetworksDeleted": ["mine"]}
    with pytest.raises(docker_py.errors.NotFound):
        mine.reload()
