"""The daemonless core for containers: create a Docker-shaped record, start it through the
in-process runtime, record how it ended, remove it.

A container lives in <root>/containers/<id>/: config.json (the shape `docker inspect`
prints), upper/ and work/ (its overlay layer), hosts, hostname, resolv.conf. Names are
reserved atomically as files in <root>/names/."""

import os
import time

from berth.errors import Conflict, InvalidArgument, NotFound
from berth.fs import Lock, read_json, remove_tree, write_bytes, write_json
from berth.paths import Paths

ZERO_TIME = "0001-01-01T00:00:00Z"


def now() -> str:
    from berth.units import format_rfc3339_nano

    return format_rfc3339_nano(time.time())


class CreateRequest:
    """What `berth create`/`run` asks for, in docker's terms (Config + HostConfig inputs)."""

    __slots__ = ("image", "name", "cmd", "entrypoint", "env", "workdir", "user", "hostname", "labels",
                 "tty", "open_stdin", "auto_remove", "network")

    def __init__(self, image: str, **fields):
        self.image = image
        self.name = fields.pop("name", None)
        self.cmd = fields.pop("cmd", None) or []
        self.entrypoint = fields.pop("entrypoint", None)  # None: image's; "": cleared
        self.env = fields.pop("env", None) or []
        self.workdir = fields.pop("workdir", None)
        self.user = fields.pop("user", None)
        self.hostname = fields.pop("hostname", None)
        self.labels = fields.pop("labels", None) or {}
        self.tty = bool(fields.pop("tty", False))
        self.open_stdin = bool(fields.pop("open_stdin", False))
        self.auto_remove = bool(fields.pop("auto_remove", False))
        self.network = fields.pop("network", None) or "none"
        if fields:
            raise TypeError(f"unknown fields {sorted(fields)}")


def command_for(image_config: dict, req: CreateRequest) -> tuple[list | None, list | None]:
    """(Entrypoint, Cmd) exactly as docker merges them: --entrypoint (even "") replaces the
    image's entrypoint and discards its Cmd; a COMMAND replaces the image's Cmd."""
    if req.entrypoint is not None:
        entrypoint = [req.entrypoint] if req.entrypoint else None
        return entrypoint, list(req.cmd) or None
    return image_config.get("Entrypoint") or None, list(req.cmd) or image_config.get("Cmd") or None


def merge_env(image_env: list | None, user_env: list[str]) -> list[str]:
    merged = {}
    for item in list(image_env or ()) + list(user_env):
        key, _, value = item.partition("=")
        merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


class Engine:
    def __init__(self, paths: Paths):
        self.paths = paths
        self._images = None

    @property
    def images(self):
        if self._images is None:
            from berth.image.store import ImageStore

            self._images = ImageStore(self.paths.images)
        return self._images

    def warm_up(self) -> None:
        """Begin slow kernel work a start will need while the caller is still creating."""
        from berth.runtime.cgroups import warm_attach_lock

        warm_attach_lock()

    # -- lookup ----------------------------------------------------------
    def container_ids(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.paths.containers) if len(n) == 64]
        except FileNotFoundError:
            return []

    def load(self, container_id: str) -> dict:
        return read_json(os.path.join(self.paths.container(container_id), "config.json"))

    def get(self, ref: str) -> dict:
        """A container by name, full ID, or unique ID prefix (docker's order)."""
        name = ref.lstrip("/")
        try:
            with open(os.path.join(self.paths.names, name)) as f:
                return self.load(f.read().strip())
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            pass
        if ref and all(c in "0123456789abcdef" for c in ref):
            matches = [i for i in self.container_ids() if i.startswith(ref)]
            if len(matches) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}", 1)
            if matches:
                try:
                    return self.load(matches[0])
                except FileNotFoundError:
                    pass
        raise NotFound(f"No such container: {ref}", 1)

    def containers(self) -> list[dict]:
        records = []
        for container_id in self.container_ids():
            try:
                records.append(self.load(container_id))
            except FileNotFoundError:
                continue  # removed while we listed
        return records

    # -- create ----------------------------------------------------------
    def create(self, req: CreateRequest) -> dict:
        from berth.engine.names import random_name, valid_name

        image = self.images.get(req.image)
        image_config = image.config.get("config") or {}
        entrypoint, cmd = command_for(image_config, req)
        if not entrypoint and not cmd:
            raise InvalidArgument("No command specified")
        if req.name is not None and not valid_name(req.name):
            raise InvalidArgument(f'Invalid container name ({req.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
        if req.network not in ("none", "default"):
            raise InvalidArgument(f"network {req.network} not found")
        argv = (entrypoint or []) + (cmd or [])
        container_id = os.urandom(32).hex()
        os.makedirs(self.paths.names, exist_ok=True)
        name = req.name
        if name is None:
            try:
                name = random_name(taken=lambda n: os.path.exists(os.path.join(self.paths.names, n)))
            except ValueError:  # every try taken: docker falls back to the short ID too
                name = container_id[:12]
        self._reserve_name(name, container_id)
        directory = self.paths.container(container_id)
        try:
            os.makedirs(os.path.join(directory, "upper"))
            os.mkdir(os.path.join(directory, "work"))
            os.mkdir(os.path.join(directory, "merged"))
            record = self._record(container_id, name, image, image_config, req, entrypoint, cmd, argv, directory)
            self._write_etc_files(record, directory)
            write_json(os.path.join(directory, "config.json"), record)
        except BaseException:
            remove_tree(directory)
            self._release_name(name, container_id)
            raise
        return record

    def _reserve_name(self, name: str, container_id: str) -> None:
        path = os.path.join(self.paths.names, name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            with open(path) as f:
                holder = f.read().strip()
            raise Conflict(
                f'Conflict. The container name "/{name}" is already in use by container "{holder}". '
                "You have to remove (or rename) that container to be able to reuse that name."
            ) from None
        os.write(fd, container_id.encode())
        os.close(fd)

    def _release_name(self, name: str, container_id: str) -> None:
        path = os.path.join(self.paths.names, name)
        try:
            with open(path) as f:
                if f.read().strip() != container_id:
                    return
            os.unlink(path)
        except FileNotFoundError:
            pass

    def _record(self, container_id, name, image, image_config, req, entrypoint, cmd, argv, directory) -> dict:
        env = merge_env(image_config.get("Env"), req.env)
        labels = dict(image_config.get("Labels") or {})
        labels.update(req.labels)
        layer_dirs = image.layer_dirs()
        return {
            "Id": container_id,
            "Created": now(),
            "Path": argv[0],
            "Args": argv[1:],
            "State": {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                      "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                      "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME},
            "Image": image.id,
            "ResolvConfPath": os.path.join(directory, "resolv.conf"),
            "HostnamePath": os.path.join(directory, "hostname"),
            "HostsPath": os.path.join(directory, "hosts"),
            "LogPath": os.path.join(directory, f"{container_id}-json.log"),
            "Name": "/" + name,
            "RestartCount": 0,
            "Driver": "overlay",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": {
                "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
                "NetworkMode": req.network, "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                "AutoRemove": req.auto_remove, "VolumeDriver": "", "VolumesFrom": None, "CapAdd": None,
                "CapDrop": None, "CgroupnsMode": "private", "Dns": [], "DnsOptions": [], "DnsSearch": [],
                "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None,
                "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
                "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "",
                "ShmSize": 67108864, "Runtime": "berth", "Isolation": "", "CpuShares": 0, "Memory": 0,
                "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0, "CpuPeriod": 0, "CpuQuota": 0,
                "CpusetCpus": "", "CpusetMems": "", "Devices": [], "MemoryReservation": 0, "MemorySwap": 0,
                "OomKillDisable": False, "PidsLimit": None, "Ulimits": None,
                "MaskedPaths": list(_spec().MASKED_PATHS), "ReadonlyPaths": list(_spec().READONLY_PATHS),
            },
            "GraphDriver": {
                "Name": "overlay",
                "Data": {
                    "LowerDir": ":".join(reversed(layer_dirs)),
                    "UpperDir": os.path.join(directory, "upper"),
                    "WorkDir": os.path.join(directory, "work"),
                    "MergedDir": os.path.join(directory, "merged"),
                },
            },
            "Mounts": [],
            "Config": {
                "Hostname": req.hostname or container_id[:12],
                "Domainname": "",
                "User": req.user if req.user is not None else image_config.get("User", ""),
                "AttachStdin": req.open_stdin,
                "AttachStdout": True,
                "AttachStderr": True,
                "Tty": req.tty,
                "OpenStdin": req.open_stdin,
                "StdinOnce": req.open_stdin,
                "Env": env,
                "Cmd": cmd,
                "Image": req.image,
                "Volumes": image_config.get("Volumes"),
                "WorkingDir": req.workdir if req.workdir is not None else image_config.get("WorkingDir", ""),
                "Entrypoint": entrypoint,
                "OnBuild": None,
                "Labels": labels,
            },
            "NetworkSettings": {"Bridge": "", "SandboxID": "", "Ports": {}, "SandboxKey": "",
                                "Networks": {}},
        }

    def _write_etc_files(self, record: dict, directory: str) -> None:
        from berth.engine import dnsfiles

        hostname = record["Config"]["Hostname"]
        write_bytes(os.path.join(directory, "hostname"), (hostname + "\n").encode(), durable=False)
        write_bytes(os.path.join(directory, "hosts"), dnsfiles.hosts().encode(), durable=False)
        try:
            with open("/etc/resolv.conf") as f:
                host_resolv = f.read()
        except OSError:
            host_resolv = ""
        write_bytes(os.path.join(directory, "resolv.conf"), dnsfiles.resolv_conf(host_resolv).encode(), durable=False)

    # -- start / finish --------------------------------------------------
    def exec_user(self, record: dict):
        from berth.engine.users import read_layered_file, resolve

        layers = [record["GraphDriver"]["Data"]["UpperDir"]] + record["GraphDriver"]["Data"]["LowerDir"].split(":")
        user = record["Config"].get("User") or ""
        passwd = read_layered_file(layers, "/etc/passwd")
        return resolve(user, passwd, read_layered_file(layers, "/etc/group"))

    def start(self, record: dict, stdio=(0, 1, 2), console_size=None):
        """Start a created or exited container in the foreground of the calling process,
        which becomes the subreaper that waits for it. Returns runtime.container.Launched."""
        from berth.engine import spec as oci
        from berth.runtime import container as runtime

        container_id = record["Id"]
        directory = self.paths.container(container_id)
        with Lock(os.path.join(directory, "lock")):
            record = self.load(container_id)
            if record["State"]["Running"] and _alive(record["State"]["Pid"]):
                raise Conflict(f"container {container_id[:12]} is already running")
            user = self.exec_user(record)
            spec = oci.build(record, user, directory, console_size)
            data = record["GraphDriver"]["Data"]
            overlay = f"lowerdir={data['LowerDir']},upperdir={data['UpperDir']},workdir={data['WorkDir']}"
            runtime.become_subreaper()
            try:
                launched = runtime.start(spec, data["MergedDir"], overlay, stdio)
            except BaseException as err:
                record["State"].update(Status="exited" if record["State"]["StartedAt"] != ZERO_TIME else "created",
                                       Error=str(err), ExitCode=getattr(err, "exit_code", 125))
                write_json(os.path.join(directory, "config.json"), record)
                raise
            record["State"].update(Status="running", Running=True, Pid=launched.pid, ExitCode=0, Error="",
                                   StartedAt=now(), FinishedAt=ZERO_TIME)
            # Atomic but not fsynced: after a host crash "running" is false whatever the disk says.
            write_json(os.path.join(directory, "config.json"), record, durable=False)
        return launched

    def finish(self, container_id: str, launched, exit_code: int) -> None:
        """Record the exit, tear down what start made, and honour --rm."""
        directory = self.paths.container(container_id)
        launched.cgroup.destroy()
        with Lock(os.path.join(directory, "lock")):
            record = self.load(container_id)
            if record["HostConfig"].get("AutoRemove"):
                self._delete(record)
                return
            record["State"].update(Status="exited", Running=False, Pid=0, ExitCode=exit_code, FinishedAt=now())
            write_json(os.path.join(directory, "config.json"), record)

    # -- remove ----------------------------------------------------------
    def remove(self, record: dict, force: bool = False) -> None:
        directory = self.paths.container(record["Id"])
        with Lock(os.path.join(directory, "lock")):
            record = self.load(record["Id"])
            state = record["State"]
            if state["Running"] and _alive(state["Pid"]):
                if not force:
                    raise Conflict(
                        f'cannot remove container "{record["Name"]}": container is running: '
                        "stop the container before removing or force remove"
                    )
                _kill_and_wait(state["Pid"])
            from berth.runtime.cgroups import open_cgroup

            cgroup = open_cgroup("/berth/" + record["Id"])
            if cgroup.exists():
                for pid in cgroup.pids():
                    _kill_and_wait(pid)
                cgroup.destroy()
            self._delete(record)

    def _delete(self, record: dict) -> None:
        remove_tree(self.paths.container(record["Id"]))
        self._release_name(record["Name"].lstrip("/"), record["Id"])


def _spec():
    from berth.engine import spec

    return spec


def _alive(pid: int) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _kill_and_wait(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
