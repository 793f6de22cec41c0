"""Use cases called as a front door calls them, without a terminal: each against a real root
(the `berth` fixture's, cleaned up and leak-checked after), its image imported by the engine
itself; containers are only created, never run (tests/integration/test_running_use_cases.py runs them)."""

import io
import tarfile

import pytest

from berth.engine import images, system
from berth.engine.container_list import list_containers
from berth.engine.containers import Engine
from berth.engine.inspect import inspect
from berth.engine.network_info import inspect_network, list_networks
from berth.engine.stats import stats
from berth.engine.top import top
from berth.engine.volumes import LIST_FILTERS, create_volume, list_volumes, parse_filters
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound
from berth.paths import Paths


def engine_of(b) -> Engine:
    return Engine(Paths(b.root, b.run_root), b.config_file)


def import_busybox(engine, tar_path: str, name: str | None = "busybox", cmd: str = '["sh"]') -> str:
    with open(tar_path, "rb") as tar:
        return images.import_image(engine, tar, images.tag_name(name) if name else None, [f"CMD {cmd}"])


@pytest.fixture
def engine(berth):
    """An engine on the test's root holding busybox:latest, imported through the use case."""
    engine = engine_of(berth)
    import_busybox(engine, berth.busybox_tar)
    return engine


@pytest.fixture
def busybox_id(engine) -> str:
    return images.inspect_image(engine, "busybox")["Id"]


def created(berth, *args: str) -> str:
    """A container created (not started) by the CLI, as another front door's work would be."""
    return berth.ok("create", "--network", "none", *args, "busybox", "true").strip()


def test_image_listing_rows(engine, busybox_id):
    [summary] = images.list_images(engine)
    assert summary.id == busybox_id
    assert summary.repo_tags == [("busybox", "latest")]
    assert summary.size > 0 and summary.unique_size == summary.size and summary.shared_size == 0
    assert summary.created > 0 and summary.created_text.endswith("Z")
    assert summary.containers is None  # counted only when asked

    images.tag(engine, "busybox", "example.com/team/tool:1")
    [summary] = images.list_images(engine)
    assert sorted(summary.repo_tags) == [("busybox", "latest"), ("example.com/team/tool", "1")]
    [only] = images.list_images(engine, ["reference=example.com/team/tool"])
    assert only.repo_tags == [("example.com/team/tool", "1")]
    assert images.list_images(engine, ["reference=busybox:1.36"]) == []
    assert images.list_images(engine, ["dangling=true"]) == []
    with pytest.raises(InvalidArgument, match="invalid filter 'nope'"):
        images.list_images(engine, ["nope=a"])
    assert images.list_images(engine, ["reference=BusyBox"]) == []  # a pattern, as in docker: no error


def test_image_history_and_inspect(engine, busybox_id):
    [step] = images.history(engine, "busybox")
    assert step.id == busybox_id and step.comment == "Imported from -"
    assert step.size == images.list_images(engine)[0].size
    kind, shown = inspect(engine, "busybox")
    assert kind == "image"
    assert shown["Id"] == busybox_id and shown["RepoTags"] == ["busybox:latest"]
    assert shown["Config"]["Cmd"] == ["sh"]
    with pytest.raises(NotFound, match="No such image: nope"):
        inspect(engine, "nope", "image")
    with pytest.raises(NotFound, match="No such object: nope"):
        inspect(engine, "nope")


def test_rmi_reports_each_step_and_refuses_an_image_in_use(engine, busybox_id, berth):
    images.tag(engine, "busybox", "second:1")
    assert list(images.remove(engine, "second:1")) == [{"Untagged": "second:1"}]
    container_id = created(berth)
    with pytest.raises(Conflict, match=f"container {container_id[:12]} is using its referenced image"):
        list(images.remove(engine, "busybox"))
    [summary] = images.list_images(engine, count_containers=True)
    assert summary.containers == 1
    berth.ok("rm", container_id)
    steps = list(images.remove(engine, "busybox"))
    assert steps[0] == {"Untagged": "busybox:latest"}
    assert steps[1] == {"Deleted": busybox_id}
    assert images.list_images(engine) == []


def test_system_df_counts_what_the_root_holds(engine, berth):
    usage = {u.type: u for u in system.disk_usage(engine)}
    assert list(usage) == ["Images", "Containers", "Local Volumes", "Build Cache"]
    image_size = images.list_images(engine)[0].size
    assert (usage["Images"].total_count, usage["Images"].active) == (1, 0)
    assert usage["Images"].size == usage["Images"].reclaimable == image_size
    assert usage["Containers"].total_count == 0 and usage["Local Volumes"].total_count == 0

    created(berth, "-v", "data:/data")
    usage = {u.type: u for u in system.disk_usage(engine)}
    assert (usage["Images"].active, usage["Images"].reclaimable) == (1, 0)
    assert (usage["Containers"].total_count, usage["Containers"].active) == (1, 0)  # created, not running
    assert (usage["Local Volumes"].total_count, usage["Local Volumes"].active) == (1, 1)
    info = system.info(engine)
    assert (info["Containers"], info["ContainersStopped"], info["Images"]) == (1, 1, 1)


def test_image_prune_returns_dockers_report(engine, busybox_id, berth):
    dangling = import_busybox(engine, berth.busybox_tar, None, '["true"]')
    report = images.prune(engine)
    assert {"Deleted": dangling} in report["ImagesDeleted"]
    assert {"Deleted": busybox_id} not in report["ImagesDeleted"]  # tagged: not dangling
    assert report["SpaceReclaimed"] >= 0
    assert [s.id for s in images.list_images(engine)] == [busybox_id]


def test_save_then_load_into_another_root(engine, busybox_id, fresh):
    archive = images.save(engine, ["busybox"])
    out = io.BytesIO()
    archive.write(out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert "manifest.json" in tar.getnames()
    other = engine_of(fresh)
    [loaded] = images.load(other, io.BytesIO(out.getvalue()))
    assert (loaded.id, loaded.names, loaded.replaced) == (busybox_id, ["busybox:latest"], [])
    with pytest.raises(NotFound):
        images.save(engine, ["nope"])
    with pytest.raises(InvalidArgument, match='unsupported format "tar"'):
        images.save(engine, ["busybox"], "tar")


def test_container_listing_and_stopped_container_use_cases(engine, berth):
    first = created(berth, "--name", "first", "--label", "team=a")
    second = created(berth, "--name", "second")
    assert list_containers(engine) == []  # none runs
    rows = list_containers(engine, all_containers=True)
    assert [r.id for r in rows] == [second, first]  # newest first
    assert (rows[1].name, rows[1].status, rows[1].state, rows[1].command) == ("first", "Created", "created", "true")
    assert rows[1].labels == {"team": "a"} and rows[1].networks == ["none"] and rows[1].mounts == []
    [labelled] = list_containers(engine, all_containers=True, filters=["label=team=a"])
    assert labelled.id == first
    assert [r.id for r in list_containers(engine, filters=["status=created"])] == [second, first]  # any state
    [sized] = list_containers(engine, latest=True)
    size_rw, size_root_fs = sized.sizes()  # measured when asked
    assert size_rw == 0 and size_root_fs > 0
    with pytest.raises(InvalidArgument):
        list_containers(engine, filters=["colour=red"])

    record = engine.get("first")
    [[figures]] = list(stats(engine, [first], stream=False))
    assert (figures.id, figures.name, figures.running, figures.pids) == (first, "first", False, 0)
    with pytest.raises(BerthError, match=f"container {first} is not running"):
        top(record)


def test_networks_and_volumes(engine):
    assert [(n.name, n.driver) for n in list_networks(engine)] == [("bridge", "bridge"), ("host", "host"),
                                                                     ("none", "null")]
    host = inspect_network(engine, "host")
    assert host["Driver"] == "host" and host["Containers"] == {}
    assert inspect_network(engine, host["Id"][:12])["Name"] == "host"
    assert inspect_network(engine, "nope") is None

    assert create_volume(engine, "data", labels={"team": "a"}) == "data"
    anonymous = create_volume(engine)
    assert len(anonymous) == 64
    names = sorted(v["Name"] for v in list_volumes(engine, parse_filters(["label=team=a"], LIST_FILTERS)))
    assert names == ["data"]
    dangling = list_volumes(engine, parse_filters(["dangling=true"], LIST_FILTERS))
    assert sorted(v["Name"] for v in dangling) == sorted(["data", anonymous])


def test_create_returns_dockers_warnings_instead_of_printing_them(engine, capfd):
    from berth.engine.containers import CreateRequest

    req = CreateRequest("busybox", network="host", port_bindings={"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
                        exposed_ports={"80/tcp": {}})
    record = engine.create(req)
    assert req.warnings == ["Published ports are discarded when using host network mode"]
    assert capfd.readouterr().err == ""
    engine.remove(record, force=True)
