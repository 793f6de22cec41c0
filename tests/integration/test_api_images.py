"""The image endpoints of the Engine API (list, inspect, history, tag, rmi, save, load, import,
commit, prune) and GET /system/df, driven by the real docker CLI (28 and Debian's 20.10) and
docker-py, checked against the berth CLI's view of the same root."""

import json

import pytest

from conftest import ApiService

docker_py = pytest.importorskip("docker")


def client(api: ApiService):
    return docker_py.DockerClient(base_url=api.url)


def busybox_id(api: ApiService) -> str:
    return api.berth.ok("images", "-q", "--no-trunc", "busybox").strip()


def refused(api: ApiService, *args: str, says: str, client: str = ApiService.DOCKER_28) -> None:
    result = api.docker(*args, client=client)
    assert result.returncode != 0, f"docker {' '.join(args)} succeeded"
    assert f"Error response from daemon: {says}" in result.stderr, result.stderr


@pytest.mark.parametrize("cli", [ApiService.DOCKER_28, ApiService.DOCKER_20])
def test_images_lists_what_berth_lists(api, cli):
    api.berth.ok("tag", "busybox", "example.com/team/tool:1.0")
    image_id = busybox_id(api)
    table = api.docker_ok("images", client=cli).splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = sorted(line.split()[:3] for line in table[1:])
    assert rows == [["busybox", "latest", image_id[7:19]], ["example.com/team/tool", "1.0", image_id[7:19]]]
    # one line a row, as docker's CLI prints them (the berth CLI prints each ID once)
    assert api.docker_ok("images", "-q", client=cli).split() == [image_id[7:19]] * 2
    assert api.docker_ok("images", "-q", "--no-trunc", "busybox", client=cli).split() == [image_id]
    digests = api.docker_ok("images", "--digests", "busybox", client=cli).splitlines()
    assert digests[0].split()[2] == "DIGEST" and digests[1].split()[:3] == ["busybox", "latest", "<none>"]
    line = json.loads(api.docker_ok("images", "--format", "{{json .}}", "example.com/team/tool", client=cli))
    assert (line["Repository"], line["Tag"], line["ID"]) == ("example.com/team/tool", "1.0", image_id[7:19])
    assert line["Size"] == api.berth.ok("images", "--format", "{{.Size}}", "busybox").strip()


def test_image_filters(api):
    api.berth.ok("tag", "busybox", "other:1")
    labelled = api.berth.ok("import", "-c", "LABEL tier=gold", api.berth.busybox_tar, "gold:1").strip()
    dangling = api.berth.ok("import", api.berth.busybox_tar).strip()

    def listed(*filters: str) -> list[str]:
        args = [a for f in filters for a in ("--filter", f)]
        return api.docker_ok("images", "--format", "{{.Repository}}:{{.Tag}}", *args).split()

    assert sorted(listed("reference=busybox")) == ["busybox:latest"]
    assert sorted(listed("reference=*:1")) == ["gold:1", "other:1"]
    assert listed("label=tier=gold") == ["gold:1"]
    assert listed("dangling=true") == ["<none>:<none>"]
    assert api.docker_ok("images", "-q", "--no-trunc", "--filter", "dangling=true").split() == [dangling]
    assert "gold:1" in listed("since=busybox") and "busybox:latest" in listed("before=gold:1")
    assert labelled not in api.docker_ok("images", "-q", "--no-trunc", "--filter", "before=busybox")
    refused(api, "images", "--filter", "color=red", says="invalid filter 'color'")


def test_image_inspect_and_history(api):
    mine = json.loads(api.berth.ok("image", "inspect", "busybox"))[0]
    theirs = json.loads(api.docker_ok("image", "inspect", "busybox"))[0]
    assert theirs == mine
    assert api.docker_ok("image", "inspect", "--format", "{{.Id}} {{json .Config.Cmd}}", "busybox").strip() \
        == f'{mine["Id"]} ["sh"]'
    old = json.loads(api.docker_ok("image", "inspect", "busybox", client=ApiService.DOCKER_20))[0]
    assert old["VirtualSize"] == mine["Size"] and old["Id"] == mine["Id"]  # API 1.41 still has it
    refused(api, "image", "inspect", "nope", says="No such image: nope")

    history = api.docker_ok("history", "--no-trunc", "--format", "{{.ID}}|{{.Size}}|{{.Comment}}", "busybox")
    assert history.split("\n")[0] == f"{mine['Id']}|{api.berth.ok('images', '--format', '{{.Size}}').strip()}|" \
        "Imported from -"
    raw = client(api).api.history("busybox")
    assert raw[0]["Id"] == mine["Id"] and raw[0]["Tags"] == ["busybox:latest"] and raw[0]["Size"] == mine["Size"]
    assert isinstance(raw[0]["Created"], int)


def test_tag_and_rmi_with_dockers_conflicts(api):
    image_id = busybox_id(api)
    api.docker_ok("tag", "busybox", "mine/tool:2")
    api.docker_ok("tag", image_id[7:19], "second", client=ApiService.DOCKER_20)
    assert sorted(api.berth.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()) \
        == ["busybox:latest", "mine/tool:2", "second:latest"]
    with pytest.raises(docker_py.errors.APIError) as err:  # docker's CLI checks names itself: docker-py does not
        client(api).api.tag("busybox", "Bad", "x")
    assert err.value.status_code == 400 and "invalid reference format" in err.value.explanation
    refused(api, "tag", "nope", "x:1", says="No such image: nope")

    refused(api, "rmi", image_id[7:19], says=f"conflict: unable to delete {image_id[7:19]} (must be forced) - "
            "image is referenced in multiple repositories")
    assert api.docker_ok("rmi", "mine/tool:2", "second").split() == ["Untagged:", "mine/tool:2",
                                                                      "Untagged:", "second:latest"]
    container = api.berth.ok("create", "busybox", "true").strip()
    refused(api, "rmi", "busybox", says='conflict: unable to remove repository reference "busybox" (must force) - '
            f"container {container[:12]} is using its referenced image {image_id[7:19]}")
    refused(api, "rmi", "nope", says="No such image: nope")
    api.berth.ok("rm", container)
    out = api.docker_ok("rmi", "busybox")
    assert f"Untagged: busybox:latest\nDeleted: {image_id}\n" in out
    assert api.berth.ok("images", "-q") == ""


def test_save_and_load_round_trip(api, tmp_path):
    """docker save through the API, read back by berth load and by docker load through the API."""
    archive = str(tmp_path / "busybox.tar")
    image_id = busybox_id(api)
    api.docker_ok("save", "-o", archive, "busybox")
    api.berth.ok("rmi", "busybox")
    assert api.berth.ok("load", "-i", archive) == "Loaded image: busybox:latest\n"
    assert busybox_id(api) == image_id

    api.berth.ok("tag", "busybox", "copy:1")
    streamed = api.docker("save", "copy:1", input=b"").stdout  # GET /images/get to stdout
    assert len(streamed) > 1 << 20
    api.berth.ok("rmi", "busybox", "copy:1")
    assert api.docker_ok("load", "-i", archive) == "Loaded image: busybox:latest\n"
    assert api.docker_ok("load", input=streamed) == b"Loaded image: copy:1\n"
    assert sorted(api.berth.ok("images", "--format", "{{.Repository}}:{{.Tag}}={{.ID}}").split()) \
        == [f"busybox:latest={image_id[7:19]}", f"copy:1={image_id[7:19]}"]
    assert api.docker_ok("load", "-q", "-i", archive, client=ApiService.DOCKER_20) == "Loaded image: busybox:latest\n"
    refused(api, "save", "-o", str(tmp_path / "none.tar"), "nope", says="No such image")


def test_load_of_a_bad_archive_adds_nothing(api, tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is no tar archive" * 100)
    before = api.berth.ok("images", "-q", "--no-trunc")
    result = api.docker("load", "-i", str(bad))
    assert result.returncode == 1 and "Error response from daemon" in result.stderr
    assert "Traceback" not in api.output()
    assert api.berth.ok("images", "-q", "--no-trunc") == before


def test_docker_py_images(api):
    docker = client(api)
    image_id = busybox_id(api)
    image = docker.images.get("busybox")
    assert image.id == image_id and image.tags == ["busybox:latest"]
    assert [i.id for i in docker.images.list()] == [image_id]
    assert image.tag("py/img", "v1") is True
    assert sorted(docker.images.get(image_id).tags) == ["busybox:latest", "py/img:v1"]
    archive = b"".join(docker.images.get(image_id).save(named="py/img:v1"))
    docker.images.remove("py/img:v1")
    docker.images.remove("busybox")
    assert docker.images.list() == []
    loaded = docker.images.load(archive)
    assert [i.id for i in loaded] == [image_id] and loaded[0].tags == ["py/img:v1"]
    assert api.berth.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split() == ["py/img:v1"]


def test_import_through_the_api(api):
    tar = api.berth.busybox_tar
    image_id = api.docker_ok("import", "-c", 'CMD ["/bin/sh"]', "-c", "ENV A=1", "-m", "first", tar,
                             "imported:1").strip()
    assert image_id.startswith("sha256:")
    shown = json.loads(api.berth.ok("image", "inspect", "imported:1"))[0]
    assert shown["Id"] == image_id and shown["Config"]["Cmd"] == ["/bin/sh"] and "A=1" in shown["Config"]["Env"]
    assert shown["Comment"] == "first"
    with open(tar, "rb") as f:
        piped = api.docker_ok("import", "-", "piped", input=f.read()).strip().decode()
    assert api.berth.ok("images", "-q", "--no-trunc", "piped").strip() == piped
    result = api.docker("import", "-c", "BOGUS x", tar)
    assert result.returncode == 1 and "BOGUS" in result.stderr.upper()


def test_commit_a_container_berth_made(api):
    api.berth.ok("run", "--name", "maker", "busybox", "sh", "-c", "echo made > /made")
    image_id = api.docker_ok("commit", "-c", 'CMD ["cat", "/made"]', "-m", "a message", "-a", "someone", "maker",
                             "made:1").strip()
    assert image_id.startswith("sha256:")
    shown = json.loads(api.berth.ok("image", "inspect", "made:1"))[0]
    assert (shown["Id"], shown["Config"]["Cmd"], shown["Author"], shown["Comment"]) \
        == (image_id, ["cat", "/made"], "someone", "a message")
    assert api.berth.ok("run", "--rm", "made:1") == "made\n"
    refused(api, "commit", "nope", says="No such container: nope")
    raw = client(api).api.commit("maker", repository="pymade", tag="2", conf={"Labels": {"by": "py"}})
    labels = json.loads(api.berth.ok("image", "inspect", "pymade:2"))[0]["Config"]["Labels"]
    assert raw["Id"].startswith("sha256:") and labels == {"by": "py"}
    api.berth.ok("rm", "maker")


def test_image_prune(api):
    dangling = api.berth.ok("import", api.berth.busybox_tar).strip()
    labelled = api.berth.ok("import", "-c", "LABEL keep=yes", api.berth.busybox_tar, "kept:1").strip()
    out = api.docker_ok("image", "prune", "-f")
    assert f"deleted: {dangling}" in out and "Total reclaimed space:" in out
    assert dangling not in api.berth.ok("images", "-q", "--no-trunc")
    out = api.docker_ok("image", "prune", "-a", "-f", "--filter", "label!=keep")
    assert labelled not in out and "untagged: busybox:latest" in out
    assert api.berth.ok("images", "--format", "{{.Repository}}").split() == ["kept"]
    report = client(api).images.prune()
    assert report == {"ImagesDeleted": [], "SpaceReclaimed": 0}


def test_pull_push_and_search_answer_dockers_error(api):
    docker = client(api)
    with pytest.raises(docker_py.errors.APIError) as err:
        docker.api.search("busybox")
    assert err.value.status_code == 501 and "registry" in err.value.explanation
    # a loopback port nothing listens on: with or without berth's registry client, an error naming it
    api.berth.ok("tag", "busybox", "127.0.0.1:9/busybox:1")
    for args in (("pull", "127.0.0.1:9/busybox:1"), ("push", "127.0.0.1:9/busybox:1")):
        result = api.docker(*args)
        assert result.returncode == 1 and "127.0.0.1:9" in result.stderr, result.stderr
    assert "Traceback" not in api.output()


def test_system_df(api):
    volume = api.berth.ok("volume", "create", "dfvol").strip()
    api.berth.ok("run", "--name", "dfc", "-v", f"{volume}:/data", "busybox", "sh", "-c",
                 "head -c 3000 /dev/zero > /data/f; head -c 5000 /dev/zero > /f")
    container = api.berth.ok("inspect", "--format", "{{.Id}}", "dfc").strip()
    table = api.docker_ok("system", "df").splitlines()
    assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert table[1].split()[:3] == ["Images", "1", "1"] and table[2].split()[:3] == ["Containers", "1", "0"]
    assert table[3].split()[:4] == ["Local", "Volumes", "1", "1"]
    verbose = api.docker_ok("system", "df", "-v")
    assert container[:12] in verbose and "dfvol" in verbose and "Build cache usage: 0B" in verbose
    api.docker_ok("system", "df", "-v", client=ApiService.DOCKER_20)

    usage = client(api).df()
    assert usage["LayersSize"] == usage["Images"][0]["Size"] and usage["BuildCache"] == []
    assert usage["Images"][0]["Containers"] == 1 and usage["Images"][0]["SharedSize"] == 0
    (summary,) = usage["Containers"]
    assert summary["Id"] == container and summary["SizeRw"] == 5000 and summary["SizeRootFs"] > 5000
    assert summary["Names"] == ["/dfc"] and summary["Image"] == "busybox" and summary["Ports"] == []
    assert summary["State"] == "exited" and summary["Mounts"][0]["Name"] == "dfvol"
    (vol,) = usage["Volumes"]
    assert vol["Name"] == "dfvol" and vol["UsageData"] == {"Size": 3000, "RefCount": 1}
    api.berth.ok("rm", container)
