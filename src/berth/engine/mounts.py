"""A container's mounts in docker's terms. The docker CLI's side turns -v/--volume, --mount,
--tmpfs and --volumes-from into a MountRequest (HostConfig.Binds/Mounts/Tmpfs/VolumesFrom and
Config.Volumes); dockerd's side (its linux parser and registerMountPoints) validates that,
creates the volumes at create and records the `Mounts` array `inspect` shows; at start the
array becomes OCI mounts, sorted so that parents mount before children."""

import os
import posixpath

from berth.engine.volumes import VolumeStore, check_name, check_options
from berth.errors import InvalidArgument, NotFound, UsageError
from berth.units import ram_in_bytes

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
DEFAULT_PROPAGATION = "rprivate"
LABEL_MODES = ("z", "Z")
CONSISTENCY_MODES = ("consistent", "cached", "delegated")
TMPFS_FLAGS = {  # moby/sys/mount's flags for tmpfs option merging: option -> the flag it sets or clears
    "ro": "rdonly", "rw": "rdonly", "suid": "nosuid", "nosuid": "nosuid", "dev": "nodev", "nodev": "nodev",
    "exec": "noexec", "noexec": "noexec", "sync": "sync", "async": "sync", "dirsync": "dirsync",
    "remount": "remount", "mand": "mand", "nomand": "mand", "atime": "noatime", "noatime": "noatime",
    "diratime": "nodiratime", "nodiratime": "nodiratime", "bind": "propagation", "rbind": "propagation",
    "unbindable": "propagation", "runbindable": "propagation", "private": "propagation",
    "rprivate": "propagation", "shared": "propagation", "rshared": "propagation", "slave": "propagation",
    "rslave": "propagation", "relatime": "relatime", "norelatime": "relatime", "strictatime": "strictatime",
    "nostrictatime": "strictatime",
}
TMPFS_DATA = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol")
# runc lets only these (lxcfs's files) be mounted inside /proc
PROC_ALLOWED = ("/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime",
                "/proc/loadavg", "/proc/slabinfo", "/proc/sys/kernel/ns_last_pid", "/proc/sys/crypto/fips_enabled")
# mounted after the container's own mounts, so a volume at /etc or /sbin does not hide them
MOUNTED_LAST = ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts", "/sbin/docker-init")


def clean(path: str) -> str:
    return posixpath.normpath(path) if path else path


# -- the docker CLI's side ----------------------------------------------------
class MountRequest:
    """What the run/create flags ask for, as the docker CLI sends it to the daemon."""

    __slots__ = ("binds", "volumes", "mounts", "tmpfs", "volumes_from")

    def __init__(self, binds=(), volumes=(), mounts=(), tmpfs=None, volumes_from=()):
        self.binds = list(binds)  # HostConfig.Binds: "src:dst[:mode]"
        self.volumes = list(volumes)  # Config.Volumes: -v with a container path only
        self.mounts = list(mounts)  # HostConfig.Mounts: the API's mount.Mount objects
        self.tmpfs = dict(tmpfs or {})  # HostConfig.Tmpfs: path -> options
        self.volumes_from = list(volumes_from)  # HostConfig.VolumesFrom: "container[:ro|rw]"

    @classmethod
    def from_flags(cls, volume=(), mount=(), tmpfs=(), volumes_from=()) -> "MountRequest":
        binds, anonymous = [], []
        for value in dict.fromkeys(volume):  # the CLI keeps -v values in a map: duplicates collapse
            bind, path = parse_volume_flag(value)
            if bind is not None:
                binds.append(bind)
            elif path not in anonymous:
                anonymous.append(path)
        tmpfs_map = {}
        for value in tmpfs:
            path, _, options = value.partition(":")
            tmpfs_map[path] = options
        return cls(binds, anonymous, [parse_mount_flag(m) for m in mount], tmpfs_map, volumes_from)


def parse_volume_flag(spec: str) -> tuple[str | None, str | None]:
    """docker CLI's -v: (a HostConfig.Binds entry, None) when a source is given, else
    (None, the container path for Config.Volumes). A relative source starting with "."
    becomes absolute, as the CLI does."""
    if not spec:
        raise InvalidArgument("invalid empty volume spec")
    if len(spec) <= 2:
        return None, spec
    parts = spec.split(":")
    for i, part in enumerate(parts):  # volumespec.Parse's checks, section by section
        if not part:
            raise InvalidArgument(f"invalid spec: {spec}: empty section between colons")
        if i == 2 and len(parts) > 3:
            raise InvalidArgument(f"invalid spec: {spec}: too many colons")
    if len(parts) == 1:
        return None, spec
    source, _, rest = spec.partition(":")
    if source.startswith(".") and not source.startswith("/"):
        source = os.path.abspath(source)
    return f"{source}:{rest}", None


def parse_mount_flag(value: str) -> dict:
    """docker CLI's --mount (opts/mount.go): CSV key=value fields -> an API mount.Mount."""
    try:
        return _parse_mount_fields(value)
    except InvalidArgument as err:
        raise UsageError(f'invalid argument "{value}" for "--mount" flag: {err}') from None


def _parse_mount_fields(value: str) -> dict:
    import csv  # lazy: only --mount parses CSV

    value = value.strip()
    if not value:
        raise InvalidArgument("value is empty")
    try:
        fields = next(csv.reader([value]))
    except csv.Error as err:
        raise InvalidArgument(str(err)) from None
    mount = {"Type": "volume"}
    for field in fields:
        key, eq, val = field.partition("=")
        if key.strip() != key:
            raise InvalidArgument(f"invalid option '{key.strip()}' in '{field}': option should not have whitespace")
        if eq:
            if not val.strip():
                raise InvalidArgument(f"invalid value for '{key}': value is empty")
            if val.strip() != val:
                raise InvalidArgument(f"invalid value for '{key}' in '{field}': value should not have whitespace")
        key = key.lower()
        if not eq and key not in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive", "bind-create-src"):
            raise InvalidArgument(f"invalid field '{field}' must be a key=value pair")
        if key == "type":
            mount["Type"] = val.lower()
        elif key in ("source", "src"):
            mount["Source"] = os.path.abspath(val) if val.startswith(".") else val
        elif key in ("target", "dst", "destination"):
            mount["Target"] = val
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _bool(key, val, bool(eq))
        elif key == "consistency":
            mount["Consistency"] = val.lower()
        elif key == "bind-propagation":
            mount.setdefault("BindOptions", {})["Propagation"] = val.lower()
        elif key == "bind-nonrecursive":
            raise InvalidArgument("bind-nonrecursive is deprecated, use bind-recursive=disabled instead")
        elif key == "bind-recursive":
            if val not in ("enabled", "disabled", "writable", "readonly"):
                raise InvalidArgument(f'invalid value for {key}: {val} (must be "enabled", "disabled", "writable", '
                                      'or "readonly")')
            if val != "enabled":
                raise InvalidArgument(f"bind-recursive={val} is not supported by berth")
            mount.setdefault("BindOptions", {})
        elif key == "bind-create-src":
            mount.setdefault("BindOptions", {})["CreateMountpoint"] = _bool(key, val, bool(eq))
        elif key == "volume-nocopy":
            mount.setdefault("VolumeOptions", {})["NoCopy"] = _bool(key, val, bool(eq))
        elif key == "volume-label":
            _set_pair(mount.setdefault("VolumeOptions", {}).setdefault("Labels", {}), val)
        elif key == "volume-driver":
            mount.setdefault("VolumeOptions", {}).setdefault("DriverConfig", {})["Name"] = val
        elif key == "volume-opt":
            driver = mount.setdefault("VolumeOptions", {}).setdefault("DriverConfig", {})
            _set_pair(driver.setdefault("Options", {}), val)
        elif key == "volume-subpath":
            raise InvalidArgument("volume-subpath is not supported by berth")
        elif key == "tmpfs-size":
            try:
                mount.setdefault("TmpfsOptions", {})["SizeBytes"] = ram_in_bytes(val)
            except ValueError:
                raise InvalidArgument(f"invalid value for {key}: {val}") from None
        elif key == "tmpfs-mode":
            try:
                mode = int(val, 8)
            except ValueError:
                raise InvalidArgument(f"invalid value for {key}: {val}") from None
            mount.setdefault("TmpfsOptions", {})["Mode"] = mode
        else:
            raise InvalidArgument(f"unknown option '{key}' in '{field}'")
    kind = mount["Type"]
    if not kind:
        raise InvalidArgument("type is required")
    for options, owner, prefix in (("BindOptions", "bind", "bind-*"), ("VolumeOptions", "volume", "volume-*"),
                                   ("TmpfsOptions", "tmpfs", "tmpfs-*")):
        if options in mount and kind != owner:
            raise InvalidArgument(f"cannot mix '{prefix}' options with mount type '{kind}'")
    return mount


def _bool(key: str, val: str, has_value: bool) -> bool:
    if not has_value or val in ("1", "true"):
        return True
    if val in ("0", "false"):
        return False
    raise InvalidArgument(f'invalid value for \'{key}\': invalid boolean value ("{val}"): must be one of "true", '
                          '"1", "false", or "0" (default "true")')


def _set_pair(target: dict, pair: str) -> None:
    key, _, value = pair.partition("=")
    if key:
        target[key] = value


# -- dockerd's linux parser ------------------------------------------------------
class MountPoint:
    """dockerd's MountPoint: where one mount goes and what backs it."""

    __slots__ = ("type", "name", "source", "destination", "driver", "mode", "rw", "propagation", "copy_data",
                 "labels", "options", "strict", "must_exist")

    def __init__(self, kind: str, destination: str, rw: bool = True, source: str = "", name: str = "",
                 mode: str = "", propagation: str = "", copy_data: bool = True):
        self.type = kind
        self.destination = destination
        self.rw = rw
        self.source = source
        self.name = name
        self.driver = ""
        self.mode = mode
        self.propagation = propagation
        self.copy_data = copy_data
        self.labels = None  # --mount volume-label, for a volume it creates
        self.options = None  # --mount volume-opt, for a volume it creates
        self.strict = False  # an image VOLUME: a file at its path is an error
        self.must_exist = False  # a volume of a --volumes-from container: never created here

    def inspect(self) -> dict:
        """The container's `Mounts` entry as `docker inspect` prints it."""
        shown = {"Type": self.type}
        if self.name:
            shown["Name"] = self.name
        shown.update(Source=self.source, Destination=self.destination)
        if self.driver:
            shown["Driver"] = self.driver
        shown.update(Mode=self.mode, RW=self.rw, Propagation=self.propagation)
        return shown


def _modes(mode: str) -> list[str]:
    return mode.split(",") if mode else []


def valid_mode(mode: str) -> bool:
    """linuxValidMountMode: comma-separated, at most one of each kind."""
    if not mode:
        return True
    counts = {}
    for option in mode.split(","):
        if option in ("rw", "ro"):
            kind = "rw"
        elif option in LABEL_MODES:
            kind = "label"
        elif option in PROPAGATIONS:
            kind = "propagation"
        elif option == "nocopy":
            kind = "copy"
        elif option in CONSISTENCY_MODES:
            kind = "consistency"
        else:
            return False
        counts[kind] = counts.get(kind, 0) + 1
    return all(n == 1 for n in counts.values())


def read_write(mode: str) -> bool:
    return valid_mode(mode) and "ro" not in _modes(mode)


class MountConfigError(InvalidArgument):
    pass


def _config_error(kind: str, message: str) -> MountConfigError:
    return MountConfigError(f'invalid mount config for type "{kind}": {message}')


def _check_target(kind: str, target: str) -> None:
    if not target:
        raise _config_error(kind, "field Target must not be empty")
    if clean(target) == "/":
        raise _config_error(kind, "invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        raise _config_error(kind, f"invalid mount path: '{target}' mount path must be absolute")


def validate_mount(spec: dict, check_source: bool = True) -> None:
    """dockerd's validateMountConfig for one API mount.Mount."""
    kind = spec.get("Type") or ""
    for options, owner in (("BindOptions", "bind"), ("VolumeOptions", "volume"), ("TmpfsOptions", "tmpfs")):
        if spec.get(options) is not None and kind != owner:
            raise _config_error(kind, f"field {options} must not be specified")
    target = spec.get("Target") or ""
    _check_target(kind, target)
    source = spec.get("Source") or ""
    if kind == "bind":
        if not source:
            raise _config_error(kind, "field Source must not be empty")
        propagation = (spec.get("BindOptions") or {}).get("Propagation")
        if propagation and propagation not in PROPAGATIONS:
            raise _config_error(kind, f"invalid propagation mode: {propagation}")
        if not source.startswith("/"):
            raise _config_error(kind, f"invalid mount path: '{source}' mount path must be absolute")
        create = (spec.get("BindOptions") or {}).get("CreateMountpoint")
        if check_source and not create and not os.path.lexists(source):
            raise _config_error(kind, f"bind source path does not exist: {source}")
    elif kind == "volume":
        driver = ((spec.get("VolumeOptions") or {}).get("DriverConfig") or {}).get("Name")
        if driver and driver != "local":
            raise NotFound(f'create {source}: error looking up volume plugin {driver}: plugin "{driver}" not found')
    elif kind == "tmpfs":
        if source:
            raise _config_error(kind, "field Source must not be specified")
        tmpfs_data(spec.get("TmpfsOptions"), bool(spec.get("ReadOnly")))
    else:
        raise _config_error(kind, "mount type unknown")


def parse_mount_spec(spec: dict, check_source: bool = True) -> MountPoint:
    """dockerd's parseMountSpec: a mount.Mount -> MountPoint."""
    validate_mount(spec, check_source)
    kind = spec["Type"]
    point = MountPoint(kind, clean(spec["Target"]), rw=not spec.get("ReadOnly"))
    if kind == "volume":
        options = spec.get("VolumeOptions") or {}
        point.name = spec.get("Source") or ""
        point.copy_data = not options.get("NoCopy")
        point.labels = options.get("Labels")
        point.options = (options.get("DriverConfig") or {}).get("Options")
    elif kind == "bind":
        point.source = clean(spec["Source"])
        point.propagation = (spec.get("BindOptions") or {}).get("Propagation") or DEFAULT_PROPAGATION
    return point


def parse_mount_raw(raw: str) -> MountPoint:
    """dockerd's ParseMountRaw: one HostConfig.Binds entry, "source:target[:mode]"."""
    parts = raw.split(":", 3)
    if not parts[0] or len(parts) > 3:
        raise InvalidArgument(f"invalid volume specification: '{raw}'")
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if valid_mode(parts[1]):  # "/foo:rw": a volume cannot have a mode without a target
            raise InvalidArgument(f"invalid volume specification: '{raw}'")
        source, target = parts
    else:
        source, target, mode = parts
    if not valid_mode(mode):
        raise InvalidArgument(f"invalid mode: {mode}")
    spec = {"Type": "bind" if source.startswith("/") else "volume", "Source": source, "Target": target,
            "ReadOnly": not read_write(mode)}
    propagation = next((o for o in _modes(mode) if o in PROPAGATIONS), None)
    if propagation:
        spec["BindOptions"] = {"Propagation": propagation}
    try:
        point = parse_mount_spec(spec, check_source=False)
    except MountConfigError as err:
        raise InvalidArgument(f"invalid volume specification: '{raw}': {err}") from None
    point.mode = mode
    point.copy_data = "nocopy" not in _modes(mode)
    return point


def parse_volumes_from(spec: str) -> tuple[str, str]:
    if not spec:
        raise InvalidArgument("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    if not mode:
        return ref, "rw"
    modes = _modes(mode)
    if not valid_mode(mode) or any(o in PROPAGATIONS or o == "nocopy" for o in modes):
        raise InvalidArgument(f"invalid mode: {mode}")
    return ref, mode


def validate_tmpfs_destination(dest: str) -> None:
    if clean(dest) == "/":
        raise InvalidArgument("invalid specification: destination can't be '/'")
    if not dest.startswith("/"):
        raise InvalidArgument(f"invalid mount path: '{dest}' mount path must be absolute")


def tmpfs_data(options: dict | None, readonly: bool) -> str:
    """ConvertTmpfsOptions: --mount's tmpfs-size/tmpfs-mode -> mount data."""
    data = ["ro"] if readonly else []
    options = options or {}
    if options.get("Mode"):
        data.append(f"mode={options['Mode']:o}")
    size = options.get("SizeBytes") or 0
    if size:
        for suffix, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % divisor == 0:
                size, unit = size // divisor, suffix
                break
        else:
            unit = ""
        data.append(f"size={size}{unit}")
    return ",".join(data)


def merge_tmpfs_options(options: list[str]) -> list[str]:
    """moby/sys/mount.MergeTmpfsOptions: later options win over earlier ones of the same kind."""
    merged, flags, data = [], set(), set()
    for option in reversed(options):
        if option == "defaults" or not option:
            continue
        if option in TMPFS_FLAGS:
            kind = TMPFS_FLAGS[option]
            if kind not in flags:
                merged.insert(0, option)
                flags.add(kind)
            continue
        key, eq, _ = option.partition("=")
        if not eq or key not in TMPFS_DATA:
            raise InvalidArgument(f'invalid tmpfs option "{key}"')
        if key not in data:
            merged.insert(0, option)
            data.add(key)
    return merged


def tmpfs_options(data: str) -> list[str]:
    """The OCI options of a tmpfs mount: docker's noexec,nosuid,nodev and rprivate, then the user's."""
    return merge_tmpfs_options(["noexec", "nosuid", "nodev", DEFAULT_PROPAGATION] + (data.split(",") if data else []))


def check_proc(destination: str) -> None:
    """runc refuses these: nothing but a proc mount on /proc, and only lxcfs's files inside it."""
    destination = clean(destination)
    if destination == "/proc":
        raise InvalidArgument(f'"{destination}" cannot be mounted because it is not of type proc')
    if destination.startswith("/proc/") and destination not in PROC_ALLOWED:
        raise InvalidArgument(f'"{destination}" cannot be mounted because it is inside /proc')


def _within(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)  # dockerd's own string-prefix test


# -- create: resolve, then attach -------------------------------------------------
class Plan:
    """registerMountPoints + createContainerVolumesOS, split in two: the constructor checks
    everything and touches nothing, so bad input leaves nothing behind; apply() creates and
    locks the volumes, copies the image's content into new ones and fills the record. The
    volumes stay locked until done() (after the record is written) or rollback()."""

    def __init__(self, engine, req: MountRequest | None, image_config: dict):
        self.engine = engine
        self._store = None
        req = req or MountRequest()
        self.req = req
        self.points: dict[str, MountPoint] = {}
        self.config_volumes = dict(image_config.get("Volumes") or {})
        for path in req.volumes:
            self.config_volumes.setdefault(path, {})
        self.held: dict[str, object] = {}
        self.notes: list[str] = []
        self._resolve()

    def _resolve(self) -> None:
        for dest in self.req.tmpfs:
            validate_tmpfs_destination(dest)
            tmpfs_options(self.req.tmpfs[dest])
        self._volumes_from()
        binds = set()
        for raw in self.req.binds:
            point = parse_mount_raw(raw)
            self._check_daemon_root(point, explicit=any(o in PROPAGATIONS for o in _modes(point.mode)))
            if point.destination in binds or point.destination in self.req.tmpfs:
                raise InvalidArgument(f"Duplicate mount point: {point.destination}")
            if point.type == "volume":
                check_name(point.name)
                if not point.mode:
                    point.mode = "z"  # dockerd's setBindModeIfNull for the local driver
            if any(o in LABEL_MODES for o in _modes(point.mode)) and point.type == "bind":
                self.notes.append(f"SELinux relabeling ('{point.mode}') of {point.source} is not done by berth")
            binds.add(point.destination)
            self.points[point.destination] = point
        for spec in self.req.mounts:
            point = parse_mount_spec(spec)
            self._check_daemon_root(point, explicit=bool((spec.get("BindOptions") or {}).get("Propagation")))
            if point.destination in binds:
                raise InvalidArgument(f"Duplicate mount point: {spec.get('Target')}")
            if point.type == "volume":
                if point.name:
                    check_name(point.name)
                check_options(point.name, point.options)
                point.mode = "z"
            binds.add(point.destination)
            self.points[point.destination] = point
        for path in sorted(self.config_volumes):
            destination = clean(path)
            if destination in self.points or destination in self.req.tmpfs:
                continue  # something is mounted there already: no anonymous volume
            try:
                _check_target("volume", path)
            except MountConfigError as err:
                raise InvalidArgument(f"invalid volume specification: '{path}': {err}") from None
            point = MountPoint("volume", destination)
            point.strict = True
            self.points[destination] = point
        for destination in list(self.points) + list(self.req.tmpfs):
            check_proc(destination)

    def _volumes_from(self) -> None:
        """Each --volumes-from container's mounts, read-only if asked (dockerd: copies
        never copy the image's content)."""
        for spec in self.req.volumes_from:
            ref, mode = parse_volumes_from(spec)
            donor = self.engine.get(ref)
            for mount in donor.get("Mounts") or ():
                point = MountPoint(mount.get("Type") or "volume", mount["Destination"],
                                   rw=bool(mount.get("RW")) and read_write(mode), source=mount.get("Source") or "",
                                   name=mount.get("Name") or "", propagation=mount.get("Propagation") or "",
                                   copy_data=False)
                point.driver = mount.get("Driver") or ""
                point.must_exist = point.type == "volume"
                self.points[point.destination] = point

    def _check_daemon_root(self, point: MountPoint, explicit: bool) -> None:
        """dockerd: a bind of (or into) its own root gets rslave unless told otherwise."""
        if point.type != "bind":
            return
        root = self.engine.paths.root
        if not _within(point.source, root):
            return
        if not explicit:
            point.propagation = "rslave"
        elif point.propagation not in ("rslave", "rshared"):
            raise InvalidArgument('invalid mount config: must use either propagation mode "rslave" or "rshared" '
                                  f'when mount source is within the daemon root, daemon root: "{root}", bind mount '
                                  f'source: "{point.source}", propagation: "{point.propagation}"')

    @property
    def store(self):
        if self._store is None:
            self._store = VolumeStore(self.engine.paths)
        return self._store

    @property
    def empty(self) -> bool:
        return not self.points and not self.req.tmpfs and not self.req.volumes_from

    def apply(self, record: dict) -> list[str]:
        """Create (or find) and lock every volume, copy the image's content into new ones,
        and fill the record: HostConfig.Binds/Mounts/Tmpfs/VolumesFrom, Config.Volumes, Mounts.
        Returns the warnings for the front door."""
        volumes = [p for p in self.points.values() if p.type == "volume"]
        for point in sorted(volumes, key=lambda p: (not p.name, p.name)):
            volume = self._attach(point)
            point.name = volume.name
            point.source = volume.data
            point.driver = "local"
        jobs = {}  # one copy per volume, from the first place it is mounted
        for point in sorted(volumes, key=lambda p: p.destination):
            if point.copy_data:
                jobs.setdefault(point.name, (self.held[point.name], point.destination, point.strict))
        if jobs:
            self.store.copy_up(list(jobs.values()), record["GraphDriver"]["Data"]["LowerDir"],
                               self.engine.paths.run_root)
        host = record["HostConfig"]
        host["Binds"] = list(self.req.binds) or None
        if self.req.mounts:
            host["Mounts"] = [_api_mount(spec) for spec in self.req.mounts]
        if self.req.tmpfs:
            host["Tmpfs"] = dict(self.req.tmpfs)
        host["VolumesFrom"] = list(self.req.volumes_from) or None
        record["Config"]["Volumes"] = self.config_volumes or None
        record["Mounts"] = [self.points[d].inspect() for d in sorted(self.points)]
        return list(self.notes)

    def _attach(self, point: MountPoint):
        if point.name in self.held:
            return self.held[point.name]
        if point.must_exist:
            volume = self.store.open(point.name)
            if volume is None:
                raise NotFound(f"get {point.name}: no such volume")
        else:
            volume = self.store.create(point.name or None, labels=point.labels, options=point.options)
        self.held[volume.name] = volume
        return volume

    def done(self) -> None:
        for volume in self.held.values():
            volume.release()
        self.held = {}

    def rollback(self) -> None:
        """The create failed: remove the volumes it made, keep those that existed."""
        for volume in self.held.values():
            try:
                if volume.created:
                    self.store._destroy(volume)
            except OSError:
                pass
        self.done()


MOUNT_FIELDS = ("Type", "Source", "Target", "ReadOnly", "Consistency", "BindOptions", "VolumeOptions",
                "TmpfsOptions")  # the API's mount.Mount, in its JSON order


def _api_mount(spec: dict) -> dict:
    return {key: spec[key] for key in MOUNT_FIELDS if spec.get(key) not in (None, "", False)}


def plan(engine, req: MountRequest | None, image_config: dict) -> Plan | None:
    resolved = Plan(engine, req, image_config)
    return None if resolved.empty else resolved


# -- start: make sources ready, then OCI mounts -------------------------------------
def prepare(engine, record: dict) -> None:
    """Before a start: host directories of -v binds made if missing (dockerd's Setup), each
    volume's interrupted copy-up finished and its driver mount (-o type/device) made."""
    for raw in record["HostConfig"].get("Binds") or ():
        try:
            point = parse_mount_raw(raw)
        except InvalidArgument:
            continue
        if point.type == "bind":
            try:
                os.makedirs(point.source, 0o755, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                pass  # a file: bound as a file
            except OSError as err:
                raise InvalidArgument(f"error while creating mount source path '{point.source}': mkdir "
                                      f"{err.filename}: {err.strerror.lower()}") from None
    store = None
    for mount in record.get("Mounts") or ():
        if mount.get("Type") != "volume":
            continue
        store = store or VolumeStore(engine.paths)
        volume = store.open(mount["Name"])
        if volume is None:
            raise NotFound(f"get {mount['Name']}: no such volume")
        with volume:
            store.complete_copy_up(volume, engine.paths.run_root)
            store.mount(volume)


def with_user_mounts(record: dict, defaults: list[dict]) -> list[dict]:
    """docker's withMounts: the container's mounts replace defaults at the same place (all
    of /dev's with a /dev of its own), are sorted so parents come first, and go after the
    standard mounts and before /etc/hosts & co (so a volume at /etc does not hide them)."""
    host = record["HostConfig"]
    specs = {clean(m.get("Target") or ""): m for m in host.get("Mounts") or ()}
    user = []
    for mount in record.get("Mounts") or ():
        destination = mount["Destination"]
        if mount.get("Type") == "tmpfs":
            spec = specs.get(destination) or {}
            data = tmpfs_data(spec.get("TmpfsOptions"), not mount.get("RW", True))
            user.append({"destination": destination, "type": "tmpfs", "source": "tmpfs",
                         "options": tmpfs_options(data)})
            continue
        options = ["rbind"]
        if not mount.get("RW", True):
            options.append("ro")
        if mount.get("Propagation"):
            options.append(mount["Propagation"])
        user.append({"destination": destination, "type": "bind", "source": mount["Source"], "options": options})
    for destination, data in (host.get("Tmpfs") or {}).items():
        user.append({"destination": clean(destination), "type": "tmpfs", "source": "tmpfs",
                     "options": tmpfs_options(data)})
    user.sort(key=lambda m: m["destination"].count("/"))
    taken = {m["destination"] for m in user}
    own_dev = "/dev" in taken
    first, last = [], []
    for mount in defaults:
        destination = mount["destination"]
        if destination in taken or own_dev and destination.startswith("/dev/"):
            continue
        (last if destination in MOUNTED_LAST else first).append(mount)
    return first + user + last


# -- remove ------------------------------------------------------------------------
def remove_anonymous_volumes(engine, record: dict) -> None:
    """`rm -v` and --rm: the container's anonymous volumes go with it, unless another
    container uses them; volumes it named (-v NAME:..., --mount source=NAME) never do."""
    named = set()
    host = record["HostConfig"]
    for raw in host.get("Binds") or ():
        named.add(raw.partition(":")[0])
    for spec in host.get("Mounts") or ():
        if spec.get("Source"):
            named.add(spec["Source"])
    store = VolumeStore(engine.paths)
    for mount in record.get("Mounts") or ():
        name = mount.get("Name")
        if mount.get("Type") != "volume" or not name or name in named:
            continue
        volume = store.open(name)
        if volume is None:
            continue
        with volume:
            if volume.anonymous:
                store.remove_unused(volume)
