"""The daemonless core for containers: create a Docker-shaped record, start it through the
in-process runtime, record how it ended, remove it.

A container lives in <root>/containers/<id>/: config.json (the shape `docker inspect`
prints), upper/ and work/ (its overlay layer), hosts, hostname, resolv.conf. Names are
reserved atomically as files in <root>/names/."""

import errno
import os
import time

from berth.engine import events
from berth.engine.names import random_name, valid_name
from berth.engine.procs import identity, same_process, wait_gone
from berth.engine.state import EXITED, PAUSED, REMOVING, RESTARTING, RUNNING, Container, container_cgroup, is_running
from berth.engine.store import ContainerStore
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound, start_exit_code
from berth.fs import Lock, make_dirs, pid_alive, remove_tree, secure_roots, write_bytes
from berth.paths import Paths

ZERO_TIME = "0001-01-01T00:00:00Z"
CLEAN_CGROUP_ROUNDS = 20  # each waits up to 0.1 s for the kernel (cgroups.files.remove_dir)
# The modules start() imports: those creating imports too are loaded before a supervisor is
# forked for a start (preload: it inherits them), the rest by that supervisor while the
# caller creates (warm_up).
CREATE_AND_START_MODULES = ("berth.engine.spec", "berth.engine.users", "berth.engine.networks",
                            "berth.engine.dnsfiles", "berth.engine.settings")
START_MODULES = ("berth.engine.procs", "berth.runtime.container", "berth.runtime.seccomp", "berth.network.bridge",
                 "berth.network.netlink", "berth.runtime.netlink_lo", "_sha256")


def now() -> str:
    from berth.units import format_rfc3339_nano  # lazy: only times written or shown need it, not every load

    return format_rfc3339_nano(time.time())


class CreateRequest:
    """What `berth create`/`run` asks for, in docker's terms (Config + HostConfig inputs)."""

    __slots__ = ("image", "name", "cmd", "entrypoint", "env", "workdir", "user", "hostname", "labels",
                 "tty", "open_stdin", "detached", "auto_remove", "network", "restart", "stop_signal", "stop_timeout",
                 "init", "dns", "dns_search", "dns_options", "extra_hosts", "exposed_ports", "port_bindings",
                 "publish_all", "links", "host_config", "config", "mounts", "healthcheck", "endpoint", "networks",
                 "warnings")

    def __init__(self, image: str, **fields):
        self.image = image
        self.name = fields.pop("name", None)
        self.cmd = fields.pop("cmd", None) or []
        self.entrypoint = fields.pop("entrypoint", None)  # None: image's; "" or [""]: cleared; str or list
        self.env = fields.pop("env", None) or []
        self.workdir = fields.pop("workdir", None)
        self.user = fields.pop("user", None)
        self.hostname = fields.pop("hostname", None)
        self.labels = fields.pop("labels", None) or {}
        self.tty = bool(fields.pop("tty", False))
        self.open_stdin = bool(fields.pop("open_stdin", False))
        self.detached = bool(fields.pop("detached", False))  # run -d: nothing attached, stdin not once
        self.auto_remove = bool(fields.pop("auto_remove", False))
        self.network = fields.pop("network", None)  # None: the engine's default (bridge)
        self.restart = fields.pop("restart", None) or {"Name": "no", "MaximumRetryCount": 0}
        self.stop_signal = fields.pop("stop_signal", None)
        self.stop_timeout = fields.pop("stop_timeout", None)
        self.init = bool(fields.pop("init", False))
        self.dns = fields.pop("dns", None) or []
        self.dns_search = fields.pop("dns_search", None) or []
        self.dns_options = fields.pop("dns_options", None) or []
        self.extra_hosts = fields.pop("extra_hosts", None) or []
        self.exposed_ports = fields.pop("exposed_ports", None) or {}  # Config.ExposedPorts additions
        self.port_bindings = fields.pop("port_bindings", None) or {}  # HostConfig.PortBindings
        self.publish_all = bool(fields.pop("publish_all", False))
        self.links = fields.pop("links", None) or []  # [(name, alias)]
        self.host_config = fields.pop("host_config", None) or {}  # more HostConfig fields, docker's names
        self.config = fields.pop("config", None) or {}  # more Config fields (Domainname, MacAddress, Attach*)
        self.mounts = fields.pop("mounts", None)  # mounts.MountRequest: -v, --mount, --tmpfs, --volumes-from
        self.healthcheck = fields.pop("healthcheck", None)  # Config.Healthcheck: the --health-* flags
        # NetworkingConfig's EndpointSettings on the container's network: IPAMConfig (--link-local-ip)
        self.endpoint = fields.pop("endpoint", None) or {}
        # more networks to join at create (the API's other EndpointsConfig): name -> EndpointSettings
        self.networks = fields.pop("networks", None) or {}
        # docker's Warnings of the create response: the engine adds, the front door shows them
        self.warnings = list(fields.pop("warnings", None) or ())
        if fields:
            raise TypeError(f"unknown fields {sorted(fields)}")


def command_for(image_config: dict, req: CreateRequest) -> tuple[list | None, list | None]:
    """(Entrypoint, Cmd) exactly as docker merges them: --entrypoint (even "") replaces the
    image's entrypoint and discards its Cmd; a COMMAND replaces the image's Cmd. The API's
    Entrypoint is a list: [""] clears it as "" does."""
    if req.entrypoint is not None:
        entrypoint = [req.entrypoint] if isinstance(req.entrypoint, str) else list(req.entrypoint)
        entrypoint = None if entrypoint in ([], [""]) else entrypoint
        return entrypoint, list(req.cmd) or None
    return image_config.get("Entrypoint") or None, list(req.cmd) or image_config.get("Cmd") or None


def merge_env(image_env: list | None, user_env: list[str]) -> list[str]:
    merged = {}
    for item in list(image_env or ()) + list(user_env):
        key, _, value = item.partition("=")
        merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


class Engine:
    def __init__(self, paths: Paths, config_file: str | None = None, overrides: dict | None = None):
        self.paths = paths
        self.store = ContainerStore(paths)
        self.abandoned = set()  # IDs load() found with a run nobody records (see recover_abandoned)
        secure_roots(paths.root, paths.run_root)
        self._images = None
        self._settings = None
        self.config_file = config_file
        self.overrides = overrides or {}

    @property
    def settings(self):
        """Engine settings (daemon.json + global flags), read on first use."""
        if self._settings is None:
            from berth.engine import settings  # lazy: read on first use (daemon.json)

            self._settings = settings.load(self.config_file, self.overrides)
        return self._settings

    @property
    def images(self):
        if self._images is None:
            from berth.image.store import ImageStore  # lazy: container-only commands never open the image store

            self._images = ImageStore(self.paths.images)
            self._images.on_event = events.image_emitter(self.paths.root)
        return self._images

    def lock(self, container_id: str) -> Lock:
        """The container's own flock: hold it for any read-modify-write of its record or files."""
        return self.store.lock(container_id)

    def locked(self, container_id: str) -> "_Locked":
        """`with engine.locked(id) as record:` the flock held and the record re-read under it."""
        return _Locked(self, container_id)

    def warm_up(self) -> None:
        """Begin what a start will need while the caller is still creating (a supervisor
        forked for the start has nothing else to do meanwhile): the slow part of the cgroup
        attach, and the modules a start imports."""
        from berth.runtime.cgroups import warm_attach_lock  # lazy: only a start or removal touches cgroups

        warm_attach_lock()
        for module in START_MODULES:
            __import__(module)

    def preload(self) -> None:
        """Import what both creating and starting need, before forking a supervisor."""
        for module in CREATE_AND_START_MODULES:
            __import__(module)

    def held_sockets(self, container_id: str) -> list[int]:
        """The fds a supervisor keeps across its exec: the sockets holding published ports."""
        from berth.engine.networks import (
            held_sockets,  # lazy: only bridged starts and releases need it (ps, images do not)
        )

        return held_sockets(container_id)

    def serve_ipv6_again(self, record: dict) -> None:
        """An adopting supervisor (a killed one's proxy died with it) serves the run's IPv6
        published ports again (engine.networks.serve_ipv6_again)."""
        if record["HostConfig"].get("NetworkMode") != "bridge":
            return
        from berth.engine.networks import (
            serve_ipv6_again,  # lazy: only bridged starts and releases need it (ps, images do not)
        )

        serve_ipv6_again(self, record)

    # -- lookup ----------------------------------------------------------
    def container_ids(self) -> list[str]:
        return self.store.ids()

    def load(self, container_id: str) -> dict:
        """The container's record, as true as we can tell (see _reconcile); changes nothing."""
        return self._reconcile(self.store.read(container_id))

    def get(self, ref: str) -> dict:
        """A container by name, full ID, or unique ID prefix (docker's order)."""
        name = ref.lstrip("/")
        if valid_name(name):  # never a path: "../x" names no container
            holder = self.store.name_holder(name)
            if holder is not None:
                try:
                    return self._looked_at(self.load(holder))
                except FileNotFoundError:
                    pass
        if ref and all(c in "0123456789abcdef" for c in ref):
            matches = [i for i in self.container_ids() if i.startswith(ref)]
            if len(matches) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
            if matches:
                try:
                    return self._looked_at(self.load(matches[0]))
                except FileNotFoundError:
                    pass
        raise NotFound(f"No such container: {ref}")

    def _looked_at(self, record: dict) -> dict:
        """A container a command names is repaired first, as far as a killed command left it
        broken: a commit's abandoned freeze thawed, a killed supervisor's run adopted or settled."""
        from berth.engine.freeze import (
            thaw_if_abandoned,  # lazy: cycle (freeze uses the engine); one failed open when unused
        )

        record = thaw_if_abandoned(self, record)
        if record["Id"] in self.abandoned:
            self.recover_abandoned()
            record = self.load(record["Id"])
            self.abandoned.discard(record["Id"])
        return record

    def containers(self) -> list[dict]:
        """Every container, each repaired as far as a commit killed mid-freeze left it (see
        recover_abandoned for killed supervisors)."""
        from berth.engine.freeze import (
            thaw_if_abandoned,  # lazy: cycle (freeze uses the engine); one failed open when unused
        )

        records = []
        for container_id in self.container_ids():
            try:
                records.append(thaw_if_abandoned(self, self.load(container_id)))
            except FileNotFoundError:
                continue  # removed while we listed
        return records

    # -- create ----------------------------------------------------------
    def create(self, req: CreateRequest) -> dict:
        # The image is held (no rmi or prune of it or its layers) until the record names it.
        hold = self.images.holding(req.image)
        try:
            image = hold.acquire()
        except NotFound:
            from berth.engine.missing_image import no_such_image  # lazy: only a missing image

            raise no_such_image(req.image) from None
        try:
            return self._create(req, image)
        finally:
            hold.release()

    def _create(self, req: CreateRequest, image) -> dict:
        image_config = image.config.get("config") or {}
        entrypoint, cmd = command_for(image_config, req)
        if not entrypoint and not cmd:
            raise InvalidArgument("No command specified")
        healthcheck = None
        if req.healthcheck is not None or image_config.get("Healthcheck"):
            from berth.engine import health  # lazy: only containers with a health check

            healthcheck = health.merge(req.healthcheck, image_config.get("Healthcheck"))
            health.validate(healthcheck)
        if req.name is not None and not valid_name(req.name):
            raise InvalidArgument(f'Invalid container name ({req.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
        network_mode, joined = self._network_mode(req.network)
        if req.config.get("MacAddress") and (network_mode in ("host", "none") or joined is not None):
            raise InvalidArgument("conflicting options: mac-address and the network mode "
                                  f"{network_mode.partition(':')[0]} (only a container on a bridge network has its "
                                  "own)")
        if req.dns or req.extra_hosts:
            from berth.engine.networks import (  # lazy: only bridged starts and releases need it (ps, images do not)
                parse_extra_hosts,
                validate_dns,
            )

            validate_dns(req.dns)
            parse_extra_hosts(req.extra_hosts)
        if joined is not None and (req.hostname or req.dns or req.dns_search or req.dns_options or req.extra_hosts):
            raise InvalidArgument("conflicting options: hostname, dns and add-host cannot be set with "
                                  "--network container:<name> (the container uses that one's)")
        links = self._check_links(req, network_mode)
        if req.auto_remove and req.restart["Name"] != "no":
            raise InvalidArgument("Conflicting options: --restart and --rm")
        if req.stop_signal:
            from berth.signals import parse_signal  # lazy: only a --stop-signal or stop/kill parses one

            parse_signal(req.stop_signal)
        argv = (entrypoint or []) + (cmd or [])
        volumes = None
        if req.mounts is not None or image_config.get("Volumes"):  # checked now: a typo creates nothing
            from berth.engine import mounts  # lazy: only -v/--mount/--tmpfs or image volumes

            volumes = mounts.plan(self, req.mounts, image_config)
        container_id = os.urandom(32).hex()
        name = req.name
        if name is None:
            try:
                name = random_name(taken=lambda n: os.path.exists(os.path.join(self.paths.names, n)))
            except ValueError:  # every try taken: docker falls back to the short ID too
                name = container_id[:12]
        directory = self.paths.container(container_id)
        # The store's order makes a kill anywhere below recoverable: the directory (and its
        # flock, held until the record exists), then the name, then the record.
        creating = self.store.begin_create(container_id, name)
        try:
            os.mkdir(os.path.join(directory, "upper"), 0o755)  # the container's "/": its mode shows inside
            os.mkdir(os.path.join(directory, "work"))
            os.mkdir(os.path.join(directory, "merged"))
            record = self._record(container_id, name, image, image_config, req, entrypoint, cmd, argv, directory)
            if healthcheck is not None:
                record["Config"] = _with_healthcheck(record["Config"], healthcheck)
            record["HostConfig"]["NetworkMode"] = network_mode
            record["Config"].update(req.config)
            record["HostConfig"]["Links"] = [f"/{target}:/{name}/{alias}" for target, alias in links] or None
            self._isolation(record, req)
            self._log_config(record, directory)
            self.exec_user(record)  # -u and --group-add must resolve now: nothing is made for a typo
            self._network_settings(record, network_mode, joined, req.endpoint)
            if req.networks:
                self._more_networks(record, network_mode, joined, req.networks)
            self._write_etc_files(record, directory, joined)
            if volumes is not None:
                req.warnings.extend(volumes.apply(record))
            self.store.write(record)
        except BaseException:
            if volumes is not None:
                volumes.rollback()
            self.store.abandon_create(container_id, name)
            raise
        finally:
            creating.__exit__()
        if volumes is not None:
            volumes.done()  # the record names its volumes now: `volume rm` sees them in use
        events.container(self.paths.root, record, "create")
        return record

    def _init_layer(self) -> str:
        """docker's "-init" layer, shared: its content is the same for every container."""
        path = os.path.join(self.paths.root, "init-layer")
        if os.path.isdir(path) and not os.path.exists(os.path.join(path, DOCKERENV)):
            _write_dockerenv(path)  # a layer made before berth had the marker: adding a file is safe
        if not os.path.isdir(path):
            for name in os.listdir(self.paths.root):  # what a maker killed midway left
                maker = name.split(".")[1] if name.startswith("init-layer.") and name.endswith(".tmp") else ""
                if maker.isdigit() and not pid_alive(int(maker)):
                    remove_tree(os.path.join(self.paths.root, name))
            staging = f"{path}.{os.getpid()}.tmp"
            _write_init_layer(staging)
            try:
                os.rename(staging, path)
            except OSError:  # another command made it first
                remove_tree(staging)
        return path

    def _record(self, container_id, name, image, image_config, req, entrypoint, cmd, argv, directory) -> dict:
        env = merge_env(image_config.get("Env"), req.env)
        exposed = dict(sorted({**(image_config.get("ExposedPorts") or {}), **req.exposed_ports}.items()))
        labels = dict(image_config.get("Labels") or {})
        labels.update(req.labels)
        layer_dirs = self.images.unpacked_layer_dirs(image) + [self._init_layer()]
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
                "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},  # _log_config
                "NetworkMode": "none", "PortBindings": dict(req.port_bindings), "RestartPolicy": dict(req.restart),
                "Init": req.init,
                "AutoRemove": req.auto_remove, "VolumeDriver": "", "VolumesFrom": None, "CapAdd": None,
                "CapDrop": None, "CgroupnsMode": self.default_cgroupns_mode(), "Dns": list(req.dns),
                "DnsOptions": list(req.dns_options), "DnsSearch": list(req.dns_search),
                "ExtraHosts": list(req.extra_hosts) or None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "",
                "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": req.publish_all,
                "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "",
                "ShmSize": 67108864, "Runtime": self.settings.default_runtime, "ConsoleSize": [0, 0], "Isolation": "",
                "CpuShares": 0,
                "Memory": 0, "NanoCpus": 0,
                # daemon.json's cgroup-parent, recorded (docker leaves "" and applies its current
                # one at each start): a changed daemon.json then never loses a container's cgroup
                "CgroupParent": self.settings.cgroup_parent, "BlkioWeight": 0, "BlkioWeightDevice": [],
                "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [],
                "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0,
                "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [], "DeviceCgroupRules": None,
                "DeviceRequests": None, "KernelMemory": 0, "KernelMemoryTCP": 0, "MemoryReservation": 0,
                "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": False, "PidsLimit": None, "Ulimits": [],
                "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
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
                # as docker's CLI sets them: -i attaches stdin and closes it after the first
                # attach ends (StdinOnce); run -d attaches nothing and keeps stdin open
                "AttachStdin": req.open_stdin and not req.detached,
                "AttachStdout": not req.detached,
                "AttachStderr": not req.detached,
                "Tty": req.tty,
                "OpenStdin": req.open_stdin,
                "StdinOnce": req.open_stdin and not req.detached,
                "Env": env or None,
                "Cmd": cmd,
                "Image": req.image,
                **({"ExposedPorts": exposed} if exposed else {}),
                "Volumes": image_config.get("Volumes"),
                "WorkingDir": req.workdir if req.workdir is not None else image_config.get("WorkingDir", ""),
                "Entrypoint": entrypoint,
                "OnBuild": None,
                "Labels": labels,
                **({"StopSignal": req.stop_signal or image_config.get("StopSignal")}
                   if req.stop_signal or image_config.get("StopSignal") else {}),
                **({"StopTimeout": req.stop_timeout} if req.stop_timeout is not None else {}),
            },
            "NetworkSettings": _networks().network_settings(),
        }

    def _network_mode(self, requested: str | None) -> tuple[str, dict | None]:
        """(NetworkMode, the joined container's record for container:<x>)."""
        mode = requested or ("bridge" if self.settings.bridged else "none")
        if mode.startswith("container:"):
            target = self.get(mode.partition(":")[2])
            if not is_running(target):
                raise Conflict(f"cannot join network namespace of a non running container: {target['Id']}")
            return "container:" + target["Id"], target
        if mode == "default":
            mode = "bridge"
        if mode == "bridge" and not self.settings.bridged:
            raise NotFound(f"network {mode} not found")
        if mode not in ("none", "host", "bridge"):
            from berth.engine.usernets import get  # lazy: only user-defined networks

            return get(self.paths.root, mode)["Name"], None
        return mode, None

    def _log_config(self, record: dict, directory: str) -> None:
        """HostConfig.LogConfig with the engine's defaults, checked (engine.logconfig); LogPath
        is docker's: json-file's file, else empty."""
        host = record["HostConfig"]
        settings = self.settings
        requested = host.get("LogConfig") or {}
        if requested.get("Type") in ("", "json-file", None) and not requested.get("Config") and \
                settings.log_driver == "json-file" and not settings.log_opts:
            host["LogConfig"] = {"Type": "json-file", "Config": {}}
            return
        from berth.engine.logconfig import log_file, resolve  # lazy: only a container or engine with a LogConfig

        host["LogConfig"] = resolve(record, settings)
        if host["LogConfig"]["Type"] != "json-file":
            record["LogPath"] = ""
        path = log_file(record)
        if path and path != record["LogPath"]:
            os.mkdir(os.path.dirname(path), 0o700)

    def log_target(self, record: dict) -> dict | None:
        """What the container's supervisor writes its output to (monitor.lean.open_log)."""
        log_config = record["HostConfig"].get("LogConfig") or {}
        if log_config.get("Type", "json-file") == "json-file" and not log_config.get("Config"):
            return {"path": record["LogPath"]}
        from berth.engine.logconfig import log_target  # lazy: only a container with a LogConfig

        return log_target(record)

    def _isolation(self, record: dict, req: CreateRequest) -> None:
        """Merge docker's isolation HostConfig fields, checked against the engine's state."""
        host = record["HostConfig"]
        host.update(req.host_config)
        ipc = host.get("IpcMode") or "private"
        if ipc.startswith("container:"):
            donor = self.get(ipc.partition(":")[2])
            ipc = "container:" + donor["Id"]
        host["IpcMode"] = ipc
        self._namespace_modes(host, req)
        if host.get("Privileged"):  # docker: nothing masked or read-only in /proc for a privileged one
            host["MaskedPaths"] = host["ReadonlyPaths"] = None
        if host.get("Sysctls"):  # runc's rule: only in a namespace of the container's own
            from berth.engine.security import (
                check_sysctls,  # lazy: only --sysctl or seccomp compilation (cached by options)
            )

            check_sysctls(host, self.load)

    def _namespace_modes(self, host: dict, req: CreateRequest) -> None:
        """docker's daemon checks of the PID, UTS and cgroup namespace modes (a PID donor must
        exist now, recorded by its ID, and run when this one starts; the host's UTS namespace
        keeps the host's name) and of --storage-opt: berth's overlay has no project quotas, so
        no size (docker's refusal on a filesystem without them)."""
        pid = host.get("PidMode") or ""
        if pid.startswith("container:"):
            host["PidMode"] = "container:" + self.get(pid.partition(":")[2])["Id"]
        if host.get("UTSMode") == "host" and req.hostname:
            raise InvalidArgument("conflicting options: hostname and the UTS mode")
        if not host.get("CgroupnsMode"):
            host["CgroupnsMode"] = self.default_cgroupns_mode()
        for key in host.get("StorageOpt") or ():  # docker's overlay2 driver, without project quotas
            if key == "size":
                raise InvalidArgument("--storage-opt is supported only for overlay over xfs with 'pquota' mount "
                                      "option")
            raise InvalidArgument(f"Unknown option {key}")

    def default_cgroupns_mode(self) -> str:
        """daemon.json's default-cgroupns-mode, else docker's: private on cgroup v2, host on v1."""
        if self.settings.default_cgroupns_mode:
            return self.settings.default_cgroupns_mode
        from berth.runtime.cgroups import unified  # lazy: only create asks

        return "private" if unified() else "host"

    def _donor(self, record: dict, field: str, not_running: str) -> dict | None:
        """The container that HostConfig `field`'s container:<x> mode names, which must exist
        and run (else docker's `not_running`, formatted with its ID); None for other modes."""
        mode = record["HostConfig"].get(field) or ""
        if not mode.startswith("container:"):
            return None
        donor_id = mode.partition(":")[2]
        try:
            donor = self.load(donor_id)
        except FileNotFoundError:
            raise NotFound(f"No such container: {donor_id}") from None
        if not is_running(donor):
            raise Conflict(not_running.format(donor_id))
        return donor

    def pid_donor_pid(self, record: dict) -> int | None:
        """For --pid container:<x>: the pid whose PID namespace to join (docker's checks)."""
        donor = self._donor(record, "PidMode", "container {} is not running")
        return None if donor is None else donor["State"]["Pid"]

    def ipc_donor(self, record: dict) -> dict | None:
        """For --ipc container:<x>: the running, shareable donor (docker's checks), else None."""
        donor = self._donor(record, "IpcMode", "cannot join IPC of a non running container: {}")
        if donor is None:
            return None
        donor_id = donor["Id"]
        if (donor["HostConfig"].get("IpcMode") or "private") not in ("shareable", "host"):
            raise Conflict(f"can't join IPC of container {donor_id}: non-shareable IPC (hint: use IpcMode:shareable "
                           "for the donor container)")
        return donor

    def _check_links(self, req: CreateRequest, mode: str) -> list[tuple[str, str]]:
        """docker's checks on publishing and links for the network mode; the link targets
        must exist now (and run when this container starts). Returns [(target name, alias)]."""
        if mode.startswith("container:"):
            if req.port_bindings or req.publish_all:
                raise InvalidArgument("conflicting options: port publishing and the container type network mode")
            if req.exposed_ports:
                raise InvalidArgument("conflicting options: port exposing and the container type network mode")
            if req.links:
                raise InvalidArgument("conflicting options: container type network can't be used with links. "
                                      "This would result in undefined behavior")
        if mode == "host":
            if req.links:
                raise InvalidArgument("conflicting options: host type networking can't be used with links. "
                                      "This would result in undefined behavior")
            if req.port_bindings or req.publish_all:
                req.warnings.append("Published ports are discarded when using host network mode")
        links = []
        for name, alias in req.links:
            try:
                target = self.get(name)
            except NotFound:
                raise NotFound(f"could not get container for {name}") from None
            links.append((target["Name"].lstrip("/"), alias))
        return links

    def _network_settings(self, record: dict, mode: str, joined: dict | None, requested: dict) -> None:
        from berth.engine.networks import (  # lazy: only bridged starts and releases need it (ps, images do not)
            endpoint,
            network_ids,
        )

        settings = record["NetworkSettings"]
        if joined is not None:
            record["Config"]["Hostname"] = joined["Config"]["Hostname"]
            for key in ("HostsPath", "ResolvConfPath", "HostnamePath"):
                record[key] = joined[key]
            return
        if mode not in ("bridge", "host", "none"):
            from berth.engine.usernets import endpoint_config, get  # lazy: only user-defined networks

            network = get(self.paths.root, mode)
            ipam = requested.get("IPAMConfig") or {}
            entry = endpoint_config(record, network, requested.get("Aliases"), ipam.get("IPv4Address"))
            if ipam:
                entry["IPAMConfig"] = dict(ipam)
            links = record["HostConfig"].get("Links")
            if links:  # docker keeps a user network's links on its endpoint: names for its resolver
                entry["Links"] = [f"{target.lstrip('/')}:{alias.rpartition('/')[2]}"
                                  for target, _, alias in (link.partition(":") for link in links)]
            settings["Networks"] = {mode: entry}
            return
        settings["Networks"] = {mode: endpoint(network_ids(self.paths.root)[mode])}
        if requested.get("IPAMConfig"):  # kept across starts; the bridge endpoint adds its link-local IPs
            settings["Networks"][mode]["IPAMConfig"] = requested["IPAMConfig"]
        if mode == "host":
            record["Config"]["Hostname"] = os.uname().nodename

    def _more_networks(self, record: dict, mode: str, joined: dict | None, requested: dict) -> None:
        """The other user-defined networks a create asks for (API 1.44+: several EndpointsConfig),
        after the network mode's, by name: they are plugged in at start as connected ones are."""
        from berth.engine.usernets import endpoint_config, get  # lazy: only several networks

        networks = record["NetworkSettings"]["Networks"]
        for name in sorted(requested):
            if name in networks or name == mode:
                continue
            if mode in ("host", "none") or joined is not None:
                raise InvalidArgument("conflicting options: a container on the host's, none or another container's "
                                      "network cannot be connected to other networks")
            if name in ("bridge", "host", "none", "default"):
                from berth.errors import NotImplementedYet  # lazy: only this refusal

                raise NotImplementedYet(f"joining {name} as a container's second network")
            network = get(self.paths.root, name)
            wanted = requested[name] or {}
            ipam = wanted.get("IPAMConfig") or {}
            networks[network["Name"]] = endpoint_config(record, network, wanted.get("Aliases"),
                                                        ipam.get("IPv4Address"))

    def _write_etc_files(self, record: dict, directory: str, joined: dict | None = None) -> None:
        """hostname, hosts and resolv.conf in the container's directory; a container that
        joins another's network uses that one's files (HostsPath... point at them)."""
        from berth.engine import dnsfiles  # lazy: only create writes the etc files

        if joined is not None:
            return
        host = record["HostConfig"]
        hostname = record["Config"]["Hostname"]
        write_bytes(os.path.join(directory, "hostname"), (hostname + "\n").encode(), durable=False, mode=0o644)
        extra = self.extra_hosts(record)
        try:
            with open("/etc/resolv.conf") as f:
                host_resolv = f.read()
        except OSError:
            host_resolv = ""
        if host["NetworkMode"] == "host":  # the host's own files: its resolvers work here
            try:
                with open("/etc/hosts") as f:
                    hosts = f.read()
            except OSError:
                hosts = dnsfiles.hosts()
            hosts += "".join(f"{address}\t{name}\n" for name, address in extra)
            resolv = dnsfiles.resolv_conf(host_resolv, host["Dns"], host["DnsSearch"], host["DnsOptions"],
                                          keep_loopback=True)
        else:
            hosts = dnsfiles.hosts(extra)
            settings = self.settings  # the engine's dns, dns-search, dns-opts: defaults for every container
            # on a user-defined network, docker's embedded resolver (127.0.0.11) answers, and
            # forwards what it does not know to these as its upstream
            internal = host["NetworkMode"] not in ("bridge", "none")
            resolv = dnsfiles.resolv_conf(host_resolv, host["Dns"] or settings.dns,
                                          host["DnsSearch"] or settings.dns_search,
                                          host["DnsOptions"] or settings.dns_opts, internal_resolver=internal)
        write_bytes(os.path.join(directory, "hosts"), hosts.encode(), durable=False, mode=0o644)
        write_bytes(os.path.join(directory, "resolv.conf"), resolv.encode(), durable=False, mode=0o644)

    def _write_user_hosts(self, record: dict, ip: str) -> None:
        """/etc/hosts of a container on user-defined networks only: its address on the first."""
        from berth.engine import dnsfiles  # lazy: only a start writes /etc/hosts

        config = record["Config"]
        names = config["Hostname"]
        if config.get("Domainname"):
            names = f"{names}.{config['Domainname']} {names}"
        text = dnsfiles.hosts(self.extra_hosts(record)) + (f"{ip}\t{names}\n" if ip else "")
        write_bytes(record["HostsPath"], text.encode(), durable=False, mode=0o644)

    def extra_hosts(self, record: dict) -> list[tuple[str, str]]:
        """--add-host entries, `host-gateway` resolved to the bridge's address like docker's."""
        from berth.engine.networks import (
            parse_extra_hosts,  # lazy: only bridged starts and releases need it (ps, images do not)
        )

        values = record["HostConfig"].get("ExtraHosts") or []
        gateway = None
        if any(v.rpartition(":")[2].rpartition("=")[2] == "host-gateway" for v in values):
            if not self.settings.bridged:
                raise InvalidArgument("host-gateway needs the bridge network, which is disabled (bridge: none)")
            from berth.network import bridge  # lazy: only host-gateway needs the bridge here

            gateway = bridge.ensure(self.paths.root, self.settings).gateway
        return parse_extra_hosts(values, gateway)

    # -- process identity and truthful state ----------------------------
    def _record_processes(self, container_id: str, container_pid: int) -> None:
        self.store.record_processes(container_id, identity(os.getpid()), identity(container_pid))

    def monitor_alive(self, container_id: str) -> bool:
        return same_process(self.store.processes(container_id).get("monitor"))

    def run_abandoned(self, container_id: str) -> bool:
        """True if the record says running (or restarting) but neither its process nor its
        supervisor is alive: nobody is left to record its end or release what it held."""
        try:
            state = self.store.read(container_id)["State"]
        except FileNotFoundError:
            return False
        if not (state["Running"] or state["Restarting"]):
            return False
        processes = self.store.processes(container_id)
        return not (same_process(processes.get("pid")) or same_process(processes.get("monitor")))

    def _reconcile(self, record: dict) -> dict:
        """A record says running but nobody is left to record its end (the supervisor was
        killed, or the host rebooted and the run root is empty): show it as exited."""
        state = record["State"]
        if not (state["Running"] or state["Restarting"]):
            return record
        if state.get("Health"):
            from berth.monitor.probing import read_probed  # lazy: only health-checked containers

            read_probed(self.paths.container_run(record["Id"]), record, self.store.written_ns(record["Id"]))
        processes = self.store.processes(record["Id"])
        if same_process(processes.get("monitor")):
            return record  # alive, or about to write the exit itself
        self.abandoned.add(record["Id"])  # nobody records its end: recover_abandoned() adopts it
        if state["Running"] and same_process(processes.get("pid")):
            return record
        if state["Restarting"]:  # stopped in its back-off: its last run's end is the truth
            state.update(Status="exited", Running=False, Restarting=False, Pid=0)
            return record
        # Nobody saw it end. The record's last write (its start) dates it, stably.
        finished = (self.store.written_ns(record["Id"]) or time.time_ns()) / 1e9
        from berth.units import format_rfc3339_nano  # lazy: only times written or shown need it, not every load

        state.update(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0,
                     ExitCode=state["ExitCode"] or 255, FinishedAt=format_rfc3339_nano(finished))
        _clear_network_settings(record)
        return record

    # -- start / finish --------------------------------------------------
    def exec_user(self, record: dict, user: str | None = None):
        from berth.engine.users import read_layered_file, resolve  # lazy: only create, start and exec resolve users

        layers = [record["GraphDriver"]["Data"]["UpperDir"]] + record["GraphDriver"]["Data"]["LowerDir"].split(":")
        user = record["Config"].get("User") or "" if user is None else user
        passwd = read_layered_file(layers, "/etc/passwd")
        return resolve(user, passwd, read_layered_file(layers, "/etc/group"),
                       record["HostConfig"].get("GroupAdd") or ())

    def start(self, record: dict, stdio=(0, 1, 2), console_size=None, restarting: bool = False):
        """Start a created or exited container; the calling process becomes its supervisor
        (subreaper, owner of its stdio). Returns runtime.container.Launched.

        With `restarting`, this is a restart-policy start: refused if the container was
        stopped by hand meanwhile."""
        from berth.engine import spec as oci  # lazy: only start and exec build an OCI spec
        from berth.runtime import container as runtime  # lazy: only start and exec run the runtime

        container_id = record["Id"]
        directory = self.paths.container(container_id)
        with self.locked(container_id) as record:
            container = Container(record)
            container.check("start", RUNNING)
            if is_running(record):
                raise Conflict(f"container {container_id[:12]} is already running")
            if restarting and self.stopped_by_hand(container_id):
                raise Conflict(f"container {container_id[:12]} was stopped")
            self._clean_cgroup(record)
            self._disconnect(container_id)  # what a run nobody saw end still holds (lease, ports)
            user = self.exec_user(record)
            data = record["GraphDriver"]["Data"]
            overlay = f"lowerdir={data['LowerDir']},upperdir={data['UpperDir']},workdir={data['WorkDir']}"
            runtime.become_subreaper()
            networks_before = dict(record["NetworkSettings"].get("Networks") or {})
            endpoint = usernet = None
            if record["HostConfig"].get("NetworkMode") not in ("host", "none"):
                from berth.engine.networks import (
                    Endpoint,  # lazy: only bridged starts and releases need it (ps, images do not)
                )
            if record["HostConfig"].get("NetworkMode") == "bridge":
                endpoint = Endpoint(self, record)
            user_names = [n for n in record["NetworkSettings"].get("Networks") or ()
                          if n not in ("bridge", "host", "none")]
            if user_names:
                from berth.engine.usernets import UserEndpoints  # lazy: only user-defined networks

                usernet = UserEndpoints(self, record, user_names, first_if=1 if endpoint is not None else 0,
                                        route=endpoint is None)
            published = None
            host_config = record["HostConfig"]
            if usernet is not None and endpoint is None and (host_config.get("PortBindings") or
                                                             host_config.get("PublishAllPorts")):
                published = Endpoint(self, record)
            try:
                if endpoint is not None:
                    endpoint.prepare()
                    write_bytes(record["HostsPath"], endpoint.hosts(self.extra_hosts(record)).encode(), durable=False,
                                mode=0o644)
                if usernet is not None:
                    usernet.prepare()
                    if endpoint is None:
                        self._write_user_hosts(record, usernet.first_ip())
                    if published is not None:
                        published.prepare_ports(usernet.first_ip())
                inputs = oci.StartInputs(net_pid=self._joined_pid(record),
                                         link_env=endpoint.link_env if endpoint is not None else (),
                                         pid_pid=self.pid_donor_pid(record),
                                         init_path=self.settings.init_path if record["HostConfig"].get("Init") else "")
                self._share_ipc(record, inputs)
                if record.get("Mounts"):  # volumes and binds: sources made, copy-ups finished
                    from berth.engine.mounts import prepare  # lazy: only containers with mounts

                    prepare(self, record)
                spec = oci.build(record, user, directory, console_size, inputs)
                self._realtime_budget(record, spec)
                on_created = _on_created(endpoint or published, usernet)
                if (record["HostConfig"].get("Runtime") or "berth") != "berth":
                    launched = self._start_external(record, spec, overlay, stdio, on_created)
                else:
                    launched = runtime.start(spec, data["MergedDir"], overlay, stdio, on_created=on_created,
                                             seccomp_program=self.seccomp_program(record))
            except BaseException as err:
                for made in (endpoint, usernet, published):
                    if made is not None:
                        try:
                            made.release()
                        except (BerthError, OSError):
                            pass  # its network.json stays: the next start or rm releases it
                ran_before = record["State"]["StartedAt"] != ZERO_TIME
                record["State"].update(Status=EXITED if ran_before else "created", Running=False, Restarting=False,
                                       Pid=0, Error=str(err), ExitCode=start_exit_code(err))
                self.store.write(record)
                raise
            self._record_processes(container_id, launched.pid)
            # A manual start begins the policy's count afresh (docker resets its restart manager).
            record["RestartCount"] = record["RestartCount"] + 1 if restarting else 0
            container.transition(RUNNING, "start", OOMKilled=False, Pid=launched.pid, ExitCode=0, Error="",
                                 StartedAt=now(), FinishedAt=ZERO_TIME)
            if record["Config"].get("Healthcheck"):
                from berth.engine import health  # lazy: only containers with a health check

                health.on_start(record)
            if endpoint is not None:
                record["NetworkSettings"] = endpoint.network_settings(launched.pid)
            if usernet is not None:
                if endpoint is None:
                    networks = record["NetworkSettings"].get("Networks") or {}
                    sandbox = usernet.endpoints[0][2]["endpoint"] if usernet.endpoints else ""
                    record["NetworkSettings"] = {**_networks().network_settings(networks), "SandboxID": sandbox,
                                                 "SandboxKey": f"/proc/{launched.pid}/ns/net"}
                else:  # the bridge's settings knew only its own network: the others are kept
                    record["NetworkSettings"]["Networks"] = {**networks_before, **record["NetworkSettings"]["Networks"]}
                usernet.network_settings(record["NetworkSettings"])
                if published is not None:
                    record["NetworkSettings"]["Ports"] = published.ports
            # Atomic but not fsynced: after a host crash "running" is false whatever the disk says.
            self.store.write(record, durable=False)
            events.started(self.paths.root, record)
        if usernet is not None:
            from berth.engine import dns  # lazy: only user-defined networks

            dns.refresh(self)  # served since on_created; now the others find it at its addresses
        return launched

    def _start_external(self, record: dict, spec: dict, overlay: str, stdio, on_created):
        """--runtime <name of daemon.json's runtimes>: the same bundle, run by that runtime
        (berth.engine.oci_runtime), its seccomp profile in the spec rather than compiled."""
        from berth.engine.oci_runtime import bundle_dir, runtime_for  # lazy: only an external runtime

        section = self.seccomp(record)
        if section is not None:
            spec["linux"]["seccomp"] = section
        return runtime_for(self, record).start(record["Id"], bundle_dir(self, record["Id"]), spec, overlay, stdio,
                                               on_created)

    def _share_ipc(self, record: dict, inputs) -> None:
        """IPC sharing: a donor's namespace (and /dev/shm) for container:<x>, a host-side
        /dev/shm tmpfs for a shareable container (so joiners can bind the same one), the
        host's /dev/shm for host."""
        from berth.engine.spec import ipc_mode  # lazy: only start and exec build an OCI spec

        mode = ipc_mode(record["HostConfig"])
        if mode == "host":
            inputs.shm_source = "/dev/shm"
        elif mode == "shareable":
            inputs.shm_source = self._shm_dir(record["Id"], record["HostConfig"].get("ShmSize") or 67108864)
        elif mode.startswith("container:"):
            donor = self.ipc_donor(record)
            inputs.ipc_pid = donor["State"]["Pid"]
            donor_mode = donor["HostConfig"].get("IpcMode")
            inputs.shm_source = "/dev/shm" if donor_mode == "host" else os.path.join(
                self.paths.container_run(donor["Id"]), "shm")

    def _realtime_budget(self, record: dict, spec: dict) -> None:
        """A real-time container's parent cgroups get daemon.json's real-time budget, as
        dockerd's (without one, the kernel refuses the container's runtime)."""
        host = record["HostConfig"]
        if not (host.get("CpuRealtimeRuntime") or host.get("CpuRealtimePeriod")):
            return
        settings = self.settings
        if settings.cpu_rt_period or settings.cpu_rt_runtime:
            from berth.runtime.cgroups import give_realtime_budget  # lazy: only real-time containers

            parent = spec["linux"]["cgroupsPath"].rpartition("/")[0]
            give_realtime_budget(parent, settings.cpu_rt_period, settings.cpu_rt_runtime)

    def _shm_dir(self, container_id: str, size: int) -> str:
        from berth.runtime import syscalls as sc  # lazy: ctypes, only IPC sharing mounts

        path = os.path.join(self.paths.container_run(container_id), "shm")
        make_dirs(path)  # the tmpfs mounted on it has its own mode
        if not os.path.ismount(path):
            sc.mount("shm", path, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, f"mode=1777,size={size}")
        return path

    def _release_shm(self, container_id: str) -> None:
        path = os.path.join(self.paths.container_run(container_id), "shm")
        if os.path.ismount(path):
            from berth.runtime import syscalls as sc  # lazy: ctypes, only IPC sharing mounts

            try:
                sc.umount2(path, sc.MNT_DETACH)
            except OSError as err:  # the other remover (rm -f, the dying run's supervisor) was first
                if err.errno not in (errno.EINVAL, errno.ENOENT):
                    raise

    def seccomp(self, record: dict) -> dict | None:
        """The OCI seccomp section for this container: docker's default profile (or the
        one given with --security-opt seccomp=...) for its capabilities; None when unconfined."""
        from berth.engine.security import (
            container_seccomp,  # lazy: only --sysctl or seccomp compilation (cached by options)
        )
        from berth.engine.spec import capabilities  # lazy: only start and exec build an OCI spec

        host = record["HostConfig"]
        return container_seccomp(host.get("SecurityOpt") or [], capabilities(host), bool(host.get("Privileged")))

    @property
    def seccomp_cache(self) -> str:
        """Compiled seccomp filters: per boot (the kernel and libseccomp may change with it)."""
        return os.path.join(self.paths.run_root, "seccomp")

    def seccomp_program(self, record: dict):
        """The compiled filter for this container (None: unconfined). It depends only on the
        security options, capabilities and privilege (and berth's profile file), so it is
        looked up by those first: then neither the profile nor the section is built, which
        keeps every supervisor ~0.5 MB smaller and the start ~1 ms faster."""
        from berth import fastjson as json  # lazy: only a seccomp cache miss hashes options
        from berth.engine.spec import capabilities  # lazy: only start and exec build an OCI spec
        from berth.runtime import seccomp  # lazy: only start and exec load a filter

        try:
            from _sha256 import sha256  # lazy: only the seccomp cache key
        except ImportError:
            from hashlib import sha256  # lazy: fallback where _sha256 is missing
        host = record["HostConfig"]
        profile = os.stat(os.path.join(os.path.dirname(__file__), "seccomp_default.json"))
        inputs = [host.get("SecurityOpt") or [], capabilities(host), bool(host.get("Privileged")),
                  profile.st_mtime_ns, profile.st_size, seccomp.COMPILER_VERSION, os.uname().release]
        alias = os.path.join(self.seccomp_cache, "by-options-" + sha256(json.dumps(inputs).encode()).hexdigest())
        if os.path.exists(alias + ".none"):
            return None
        program = seccomp.read_cached(alias + ".bpf")
        if program is not None:
            return program
        section = self.seccomp(record)
        make_dirs(self.seccomp_cache)
        if section is None:
            with open(alias + ".none", "w"):
                pass
            return None
        program = seccomp.prepare(section, self.seccomp_cache)
        seccomp.save(alias + ".bpf", program)
        return program

    def _joined_pid(self, record: dict) -> int | None:
        """For --network container:<x>: the pid whose network namespace to join, now."""
        target = self._donor(record, "NetworkMode", "cannot join network namespace of a non running container: {}")
        if target is None:
            return None
        target_id = target["Id"]
        # Its network namespace may now outlive its pid 1: when it ends, unplug it explicitly.
        marker = os.path.join(self.paths.container_run(target_id), "netns-shared")
        with open(marker, "w"):
            pass
        return target["State"]["Pid"]

    def finish(self, container_id: str, launched, exit_code: int, allow_restart: bool = False,
               error: str = "") -> bool:
        """Record the exit, tear down what start made, honour --rm. With `allow_restart`
        (a detached supervisor), apply the restart policy: True means the container is now
        "restarting" and the supervisor should start it again after its back-off."""
        oom = launched.cgroup.oom_killed()
        launched.cgroup.destroy()
        self._finish_external(container_id)
        # Its pid 1 is gone, so its network namespace dies with it and the kernel removes the
        # veth (deleting it ourselves costs ~15 ms of RCU waits) - unless others share it, or
        # the namespace lingers (orphaned TCP sockets keep it for seconds): a detached
        # supervisor (allow_restart) has the time, and deletes it as docker does.
        shared = os.path.join(self.paths.container_run(container_id), "netns-shared")
        left_user_networks = self._disconnect(container_id, unplug=allow_restart or os.path.exists(shared))
        if left_user_networks:
            from berth.engine import dns  # lazy: only user-defined networks

            dns.forget_container(self, container_id)
        self._release_shm(container_id)
        try:
            os.unlink(shared)
        except FileNotFoundError:
            pass
        try:
            lock = self.lock(container_id).__enter__()
        except FileNotFoundError:
            return False  # removed while it ran (rm -f)
        try:
            try:
                record = self.load(container_id)
            except FileNotFoundError:
                return False
            container = Container(record)
            if container.status == REMOVING:
                return False  # rm -f is taking it away: its remover records nothing more
            _clear_network_settings(record)
            restart = allow_restart and self._policy_restarts(record, exit_code)
            events.died(self.paths.root, record, exit_code)
            if not restart and record["HostConfig"].get("AutoRemove"):
                self._delete(record, volumes=True)  # docker's --rm takes the anonymous volumes too
                return False
            # docker shows a container in its restart back-off as Running and Restarting.
            container.transition(RESTARTING if restart else EXITED, Pid=0, ExitCode=exit_code, OOMKilled=oom,
                                 FinishedAt=now(), Error=error)
            _stop_probing(record)
            self.store.write(record)
            return restart
        finally:
            lock.__exit__(None, None, None)
            if left_user_networks:  # its addresses are cleared (or it is gone) by now
                from berth.engine import dns  # lazy: only user-defined networks

                dns.refresh(self)

    def _policy_restarts(self, record: dict, exit_code: int) -> bool:
        """docker's restart policies: no, always, unless-stopped, on-failure[:max-retries];
        none applies after a stop or kill by hand until the next start."""
        policy = record["HostConfig"].get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if name == "no" or self.stopped_by_hand(record["Id"]):
            return False
        if name == "on-failure":
            limit = policy.get("MaximumRetryCount") or 0
            return exit_code != 0 and not (limit and record["RestartCount"] >= limit)
        return True

    # -- health checks ---------------------------------------------------
    def probed(self, record: dict) -> bool:
        """Whether the container has a health probe to run (its supervisor then probes it)."""
        if not record["Config"].get("Healthcheck"):
            return False
        from berth.engine.health import probe_command  # lazy: only containers with a health check

        return probe_command(record) is not None

    def probing(self, container_id: str, pid: int):
        """The probing of its run `pid` (monitor.probing.Probing), for its supervisor's loop;
        None when there is nothing to probe."""
        from berth.engine.health import probe_plan  # lazy: only containers with a health check

        plan = probe_plan(self, container_id, pid)
        if plan is None:
            return None
        from berth.monitor.probing import Probing  # lazy: only containers with a health check

        return Probing(plan)

    # -- exec ------------------------------------------------------------
    def exec(self, record: dict, argv: list[str], user: str | None = None, env=(), workdir: str | None = None,
             tty: bool = False, privileged: bool = False, stdio=(0, 1, 2), console_size=None, wait: bool = True):
        """Start `argv` inside the running container, in all its namespaces and its cgroup,
        with its capability and user rules. Returns runtime.container.Launched."""
        from berth.runtime import container as runtime  # lazy: only start and exec run the runtime

        spec, program = self.exec_spec(record, argv, user, env, workdir, tty, privileged, console_size)
        if wait:
            runtime.become_subreaper()
        return runtime.exec_in(spec, stdio, seccomp_program=program)

    def exec_spec(self, record: dict, argv: list[str], user: str | None = None, env=(), workdir: str | None = None,
                  tty: bool = False, privileged: bool = False, console_size=None) -> tuple[dict, object]:
        """An exec's OCI spec (the container's namespaces by path, its cgroup, its process
        rules with the exec's own) and the seccomp filter it runs under (None: unconfined),
        for the running container `record`."""
        from berth.engine import spec as oci  # lazy: only start and exec build an OCI spec

        container_id = record["Id"]
        record = self.load(container_id)
        if not is_running(record):
            raise Conflict(f"container {container_id} is not running")
        if record["State"]["Paused"]:
            raise Conflict(f"Container {container_id} is paused, unpause the container before exec")
        config = dict(record["Config"], Tty=tty, Env=merge_env(record["Config"].get("Env"), list(env)))
        exec_record = dict(record, Config=config, Path=argv[0], Args=argv[1:])
        spec = oci.build(exec_record, self.exec_user(record, user), self.paths.container(container_id), console_size)
        process = spec["process"]
        if workdir:
            process["cwd"] = workdir
        if privileged:
            from berth.runtime.caps import CAPS  # lazy: only exec --privileged

            process["capabilities"] = {k: list(CAPS) for k in ("bounding", "effective", "permitted")}
        if record["HostConfig"].get("Init"):
            process["args"] = process["args"][2:]  # tini is already pid 1
        pid = record["State"]["Pid"]
        spec["linux"]["namespaces"] = [{"type": t, "path": f"/proc/{pid}/ns/{name}"} for t, name in (
            ("ipc", "ipc"), ("uts", "uts"), ("network", "net"), ("pid", "pid"), ("cgroup", "cgroup"),
            ("mount", "mnt"))]
        program = None if privileged else self.seccomp_program(record)  # like runc: exec gets the container's
        return spec, program

    # -- stop / kill / pause ---------------------------------------------
    def stopped_by_hand(self, container_id: str) -> bool:
        return self.store.stopped_by_hand(container_id)

    def mark_stopped_by_hand(self, container_id: str, stopped: bool) -> None:
        """docker's HasBeenManuallyStopped: a restart policy stays off until the next start."""
        self.store.mark_stopped_by_hand(container_id, stopped)

    def stop_signal(self, record: dict) -> int:
        from berth.signals import parse_signal  # lazy: only a --stop-signal or stop/kill parses one

        name = record["Config"].get("StopSignal") or "SIGTERM"
        return parse_signal(name)

    def kill(self, record: dict, signum: int) -> None:
        if not is_running(record):
            raise Conflict(f"Cannot kill container: {record['Id'][:12]}: "
                           f"Container {record['Id']} is not running")
        configured = record["Config"].get("StopSignal")
        if not configured or signum in (9, self.stop_signal(record)):
            self.mark_stopped_by_hand(record["Id"], True)
        events.container(self.paths.root, record, "kill", {"signal": str(signum)})
        os.kill(record["State"]["Pid"], signum)
        if record["State"]["Paused"]:
            self.cgroup(record).thaw()

    def stop(self, record: dict, timeout: float | None = None, signum: int | None = None) -> None:
        """The stop signal (`signum`, else the container's), then SIGKILL after `timeout`
        seconds (default: the container's StopTimeout or 10), then wait until its end is
        recorded."""
        container_id = record["Id"]
        self.mark_stopped_by_hand(container_id, True)
        try:
            record = self.load(container_id)
        except FileNotFoundError:
            raise NotFound(f"No such container: {container_id}") from None  # removed meanwhile
        ended_by = None
        if is_running(record):
            if timeout is None:
                timeout = record["Config"].get("StopTimeout") or 10
            pid = record["State"]["Pid"]
            try:
                ended_by = signum or self.stop_signal(record)
                events.container(self.paths.root, record, "kill", {"signal": str(ended_by)})
                os.kill(pid, ended_by)
                if record["State"]["Paused"]:
                    self.cgroup(record).thaw()
                if not wait_gone(pid, timeout):
                    ended_by = 9
                    events.container(self.paths.root, record, "kill", {"signal": "9"})
                    os.kill(pid, 9)
                    wait_gone(pid, 10)
            except ProcessLookupError:
                pass
        self.wait_recorded(container_id, ended_by=ended_by)
        if ended_by is not None:  # docker's stop event: only for a container that was running
            events.container(self.paths.root, record, "stop")

    def end_restarting(self, container_id: str) -> None:
        """The supervisor's restart back-off was cut short by a stop: it stays exited."""
        try:
            with self.locked(container_id) as record:
                if record["State"]["Restarting"]:
                    Container(record).transition(EXITED, Pid=0)
                    self.store.write(record)
        except NotFound:
            pass

    def wait_recorded(self, container_id: str, timeout: float = 10.0, ended_by: int | None = None) -> dict:
        """Wait until the record no longer says running/restarting; if no supervisor is left
        to write that, write it ourselves (and clean the cgroup): ended by signal `ended_by`
        (what we sent) now, as far as anyone can tell without being its parent."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                record = self.store.read(container_id)
            except FileNotFoundError:
                return {}
            state = record["State"]
            if not (state["Running"] or state["Restarting"]):
                return record
            if not self.monitor_alive(container_id) or time.monotonic() > deadline:
                try:
                    return self.settle_abandoned_run(container_id, ended_by)
                except NotFound:
                    return {}
            time.sleep(0.005)

    def settle_abandoned_run(self, container_id: str, ended_by: int | None = None) -> dict:
        """A run nobody is left to record (its supervisor was killed): under the container's
        lock, clean its cgroup, release what it held on the network, record it exited (ended
        by signal `ended_by` if we sent one). Nothing if its end was recorded meanwhile."""
        with self.locked(container_id) as record:
            return self._settle_locked(record, ended_by)

    def recover_abandoned(self) -> None:
        """Settle the abandoned runs the loads so far found (a look at a container repairs
        what a killed supervisor left: `ps`, `inspect`). Never waits: a container whose lock
        is held is left to its holder."""
        if not self.abandoned:
            return
        # lazy: cycle (adopt forks a supervisor through the engine); only killed supervisors
        from berth.engine.adopt import adopt_if_orphaned

        for container_id in sorted(self.abandoned):
            try:
                stored = self.store.read(container_id)
                if adopt_if_orphaned(self, stored) is not None:
                    continue  # a new supervisor watches it (or recorded its unseen end)
            except FileNotFoundError:
                continue
            fd = self.store.try_lock(container_id)
            if fd is None:
                continue
            try:
                self._settle_locked(self.load(container_id))
            except FileNotFoundError:
                continue
            finally:
                os.close(fd)
            if stored["State"]["Restarting"] and not self.stopped_by_hand(container_id):
                self._restart_abandoned(container_id)
        self.abandoned.clear()

    def _restart_abandoned(self, container_id: str) -> None:
        """Its supervisor was killed during the restart policy's back-off: the policy still
        applies, so a new supervisor starts it, as the old one was about to."""
        from berth.monitor.supervisor import start_detached  # lazy: only a killed supervisor's back-off

        try:
            start_detached(self, container_id)
        except (Conflict, NotFound):
            pass  # started or removed meanwhile

    def release_stale_hold(self, container_id: str) -> bool:
        """Another run wants a host port (or address) `container_id` holds: release it if that
        container's run is over with nobody left to release it (a start, rm or supervisor
        killed midway). True if something was released."""
        from berth.engine.networks import (
            release_orphan,  # lazy: only bridged starts and releases need it (ps, images do not)
        )

        if not os.path.isdir(self.paths.container(container_id)):
            release_orphan(self, container_id)  # removed, or its removal was killed midway
            if os.path.isdir(os.path.join(self.paths.root, "networks")):
                from berth.engine.usernets import release_orphan as release_user  # lazy: only user networks

                release_user(self, container_id)
            return True
        fd = self.store.try_lock(container_id)
        if fd is None:
            return False  # being started, stopped or removed right now: its holder's to release
        try:
            try:
                record = self.load(container_id)
            except FileNotFoundError:
                return False
            state = record["State"]
            if state["Running"] or state["Restarting"]:
                return False  # load() found its run alive
            if container_id in self.abandoned:
                self._settle_locked(record)
            release_orphan(self, container_id)  # also what a start killed midway took
            return True
        finally:
            os.close(fd)

    def _settle_locked(self, record: dict, ended_by: int | None = None) -> dict:
        container_id = record["Id"]
        stored = self.store.read(container_id)["State"]
        if not (stored["Running"] or stored["Restarting"]):
            return record  # its supervisor recorded the end meanwhile: that is the truth
        if not self.run_abandoned(container_id) and pid_alive(stored["Pid"]):
            return record
        self._clean_cgroup(record)
        self._disconnect(container_id)  # what the dead run held: we hold its lock
        if ended_by and not record["State"]["Running"]:
            record["State"].update(ExitCode=128 + ended_by, FinishedAt=now())
        self.store.write(record)
        return record

    def cgroup(self, record: dict):
        """The container's cgroup (engine.state.container_cgroup)."""
        return container_cgroup(record)

    def pause(self, record: dict, paused: bool) -> None:
        from berth.engine.freeze import (
            thaw_if_abandoned,  # lazy: cycle (freeze uses the engine); one failed open when unused
        )

        container_id = record["Id"]
        with self.locked(container_id) as record:
            record = thaw_if_abandoned(self, record, held=True)
            if not is_running(record):
                raise Conflict(f"Container {container_id} is not running")
            if paused and record["State"]["Paused"]:
                raise Conflict(f"Container {container_id} is already paused")
            if not paused and not record["State"]["Paused"]:
                raise Conflict(f"Container {container_id} is not paused")
            cgroup = self.cgroup(record)
            cgroup.freeze() if paused else cgroup.thaw()
            Container(record).transition(PAUSED if paused else RUNNING, "pause" if paused else "unpause")
            if paused:
                _stop_probing(record)  # its supervisor skips a paused container (monitor.probing)
            self.store.write(record, durable=False)
            events.container(self.paths.root, record, "pause" if paused else "unpause")

    def rename(self, record: dict, new_name: str) -> None:
        if not valid_name(new_name):
            raise InvalidArgument(f"Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        container_id = record["Id"]
        old = record["Name"].lstrip("/")
        if new_name.lstrip("/") == old:
            raise Conflict("Renaming a container with the same name as its current name")
        new_name = new_name.lstrip("/")
        with self.locked(container_id) as record:
            self.store.rename(container_id, new_name)
            try:
                record["Name"] = "/" + new_name
                _rename_dns_names(record)
                self.store.write(record)
            except BaseException:
                self.store.release_name(new_name, container_id)
                raise
            self.store.release_name(old, container_id)
        events.container(self.paths.root, record, "rename", {"oldName": "/" + old})
        if any(n not in ("bridge", "host", "none") for n in record["NetworkSettings"].get("Networks") or ()):
            from berth.engine import dns  # lazy: only user-defined networks

            dns.refresh(self)

    def _disconnect(self, container_id: str, unplug: bool = True) -> bool:
        """Release what a run took on the bridge (see networks.release) and on user-defined
        networks (usernets.release_all), also what a release killed midway left; cheap when
        there is nothing. True if it held endpoints on user-defined networks."""
        try:
            entries = os.listdir(self.paths.container_run(container_id))
        except FileNotFoundError:
            return False
        if any(e.startswith("network.json") for e in entries):
            from berth.engine.networks import (
                release,  # lazy: only bridged starts and releases need it (ps, images do not)
            )

            release(self, container_id, unplug)
        if any(e.startswith("endpoint-") for e in entries):
            from berth.engine.usernets import release_all  # lazy: only user-defined networks

            release_all(self, container_id, unplug)
            return True
        return False

    def _wait_released(self, container_id: str, timeout: float = 5.0) -> None:
        """rm -f returns only once the networks are released (the bridge's network.json and each
        user network's endpoint-<id>.json), by whoever claimed them (the dying container's
        supervisor may be doing it right now, without the lock): its run directory, which holds
        the claims, goes next."""
        directory = self.paths.container_run(container_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                claims = [n for n in os.listdir(directory) if ".releasing-" in n and
                          (n.startswith("network.json.") or n.startswith("endpoint-"))]
            except FileNotFoundError:
                return
            if not claims:
                return
            for claim in claims:  # a claimer killed halfway: take its work over
                if not pid_alive(int(claim.rpartition("-")[2])):
                    try:
                        os.rename(os.path.join(directory, claim),
                                  os.path.join(directory, claim.rpartition(".releasing-")[0]))
                    except FileNotFoundError:
                        continue
                    self._disconnect(container_id)
            time.sleep(0.005)

    def _clean_cgroup(self, record: dict) -> None:
        """Kill whatever is left in the container's cgroup and remove it."""
        cgroup = self.cgroup(record)
        if not cgroup.exists():
            return
        cgroup.thaw()
        for attempt in range(CLEAN_CGROUP_ROUNDS):
            # everything in any of its hierarchies: a health probe (monitor.probe_child) may be
            # joining them one by one as the container ends; it is killed with the rest
            for pid in cgroup.members():
                _kill_and_wait(pid)
            try:
                cgroup.destroy()
                return
            except OSError as err:
                if err.errno != errno.EBUSY or attempt == CLEAN_CGROUP_ROUNDS - 1:
                    raise

    # -- remove ----------------------------------------------------------
    def remove(self, record: dict, force: bool = False, volumes: bool = False) -> None:
        """`volumes` (rm -v): its anonymous volumes go too, unless another container uses them."""
        container_id = record["Id"]
        with self.locked(container_id) as record:
            if is_running(record) or record["State"]["Restarting"] and self.monitor_alive(container_id):
                if not force:
                    raise Conflict(
                        f'cannot remove container "{record["Name"]}": container is running: '
                        "stop the container before removing or force remove"
                    )
                self.mark_stopped_by_hand(container_id, True)
                if record["State"]["Pid"]:
                    events.container(self.paths.root, record, "kill", {"signal": "9"})
                    _kill_and_wait(record["State"]["Pid"])
                    events.died(self.paths.root, record, 137)  # its supervisor finds it gone: says nothing
            self._clean_cgroup(record)
            self._finish_external(container_id)  # a run nobody saw end
            self._delete(record, volumes)

    def _finish_external(self, container_id: str) -> None:
        """What an external runtime keeps of an ended container (its state, our bundle) goes."""
        if os.path.isdir(os.path.join(self.paths.container_run(container_id), "bundle")):
            from berth.engine.oci_runtime import finished  # lazy: only an external runtime's container

            finished(self, container_id)

    def _delete(self, record: dict, volumes: bool = False) -> None:
        """Called with the container's lock held. Ordered so that a kill anywhere leaves a
        state the next command completes: marked removing (`rm` again finishes it, `start`
        refuses it), what its run held released (resumable: see _disconnect), its directory
        moved away (from then on it does not exist), its name freed, the directory deleted."""
        container_id = record["Id"]
        container = Container(record)
        if container.status != REMOVING:
            container.transition(REMOVING, "rm")
            self.store.write(record, durable=False)
        if self._disconnect(container_id):
            _forget_in_dns(self, container_id)
        self._wait_released(container_id)
        self._release_shm(container_id)
        self.store.remove_run_dir(container_id)
        trash = self.store.move_to_trash(container_id)
        if trash is None:
            return
        self.store.release_name(record["Name"].lstrip("/"), container_id)
        remove_tree(trash)
        self.store.reap_trash()  # what removals killed midway left
        events.container(self.paths.root, record, "destroy")
        if volumes and record.get("Mounts"):
            from berth.engine.mounts import remove_anonymous_volumes  # lazy: only containers with mounts

            remove_anonymous_volumes(self, record)


INIT_DIRS = ("dev", "dev/pts", "dev/shm", "proc", "sys", "etc")
INIT_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")
DOCKERENV = ".dockerenv"  # docker's marker file: tools test for it to know they run in a container


def _clear_network_settings(record: dict) -> None:
    """docker empties a stopped container's addresses and published ports."""
    settings = record["NetworkSettings"]
    networks = settings.get("Networks") or {}
    if not settings.get("IPAddress") and not settings.get("Ports") and not settings.get("SandboxKey") and \
            not any(n.get("IPAddress") for n in networks.values()):
        return
    for network in networks.values():
        network.update(EndpointID="", Gateway="", IPAddress="", IPPrefixLen=0, MacAddress="", DNSNames=None)
    record["NetworkSettings"] = _networks().network_settings(networks)


def _rename_dns_names(record: dict) -> None:
    """A running container's DNSNames on its user-defined networks follow its new name."""
    networks = record["NetworkSettings"].get("Networks") or {}
    if any(entry.get("DNSNames") for entry in networks.values()):
        from berth.engine.usernets import dns_names  # lazy: only user-defined networks

        for entry in networks.values():
            if entry.get("DNSNames"):
                entry["DNSNames"] = dns_names(record, entry.get("Aliases"))


def _on_created(endpoint, user):
    """The runtime's hook once the container's namespaces exist: plug its networks in."""
    if user is None:
        return endpoint.attach if endpoint is not None else None

    def attach(pid: int) -> None:
        if endpoint is not None:
            endpoint.attach(pid)
        user.attach(pid)
        # Served before the container's first process runs (as docker's resolver is): a lookup
        # it makes at once is answered, never refused.
        from berth.engine import dns  # lazy: only user-defined networks

        dns.serve_container(user.engine, {**user.record, "State": {**user.record["State"], "Pid": pid}})
    return attach


def _forget_in_dns(engine, container_id: str) -> None:
    """The embedded resolver stops answering for a container that left its user networks."""
    from berth.engine import dns  # lazy: only user-defined networks

    dns.forget_container(engine, container_id)
    dns.refresh(engine)


def _stop_probing(record: dict) -> None:
    """docker's CloseMonitorChannel: a container whose probing stops (it ended, or was
    paused) is unhealthy until a probe says otherwise."""
    health = record["State"].get("Health")
    if health:
        health["Status"] = "unhealthy"


def _with_healthcheck(config: dict, healthcheck: dict) -> dict:
    """Config with Healthcheck where docker's Config struct has it: after Cmd."""
    items = list(config.items())
    at = [key for key, _ in items].index("Cmd") + 1
    return dict(items[:at] + [("Healthcheck", healthcheck)] + items[at:])


def _networks():
    from berth.engine import networks  # lazy: only records with addresses

    return networks


def _write_init_layer(path: str) -> None:
    """docker's "-init" layer: the mount points every container gets, in a lower layer of
    their own, so mounting them never copies anything up and `diff`/`commit` do not see them."""
    remove_tree(path)
    os.mkdir(path, 0o700)  # a lower layer's own "/" never shows: the container's upper dir's does
    for name in INIT_DIRS:
        os.makedirs(os.path.join(path, name), 0o755, exist_ok=True)
    for name in INIT_FILES:
        os.close(os.open(os.path.join(path, name), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    os.symlink("/proc/mounts", os.path.join(path, "etc", "mtab"))
    _write_dockerenv(path)


def _write_dockerenv(path: str) -> None:
    """An empty /.dockerenv, 0755 as docker's."""
    fd = os.open(os.path.join(path, DOCKERENV), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o755)
    os.fchmod(fd, 0o755)
    os.close(fd)


class _Locked:
    """A container's flock plus its record re-read under it; NotFound if it is gone."""

    __slots__ = ("engine", "container_id", "lock")

    def __init__(self, engine: Engine, container_id: str):
        self.engine = engine
        self.container_id = container_id
        self.lock = engine.lock(container_id)

    def __enter__(self) -> dict:
        missing = NotFound(f"No such container: {self.container_id}")
        try:
            self.lock.__enter__()
        except FileNotFoundError:
            raise missing from None
        try:
            return self.engine.load(self.container_id)
        except FileNotFoundError:
            self.lock.__exit__()
            raise missing from None

    def __exit__(self, *exc) -> None:
        self.lock.__exit__()


def _spec():
    from berth.engine import spec  # lazy: only start and exec build an OCI spec

    return spec


def _kill_and_wait(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    wait_gone(pid, timeout)
