"""The Go structs docker's `inspect --format` templates run on: docker executes a template on
the typed object first (so `{{.ID}}` and `{{.HostConfig.NanoCPUs}}`, the Go field names,
work and a nested struct prints as `{unless-stopped 0}`), and only when that fails on the
JSON decoded into maps (where `{{.Id}}` works and structs print as `map[...]`).

Each struct below lists its fields in Go's order as `GoName[=jsonKey][?]:kind` (`?`:
omitempty). Kinds: s b i (string, bool, integer), *s *i *b (pointers to them), [] (a
slice of plain values), map (a map of plain values), T, *T, []T (a struct, a pointer to
one, a slice of them), map{} (a set: values are struct{}), map[]T and map*T (maps of
slices of T, of pointers to T), time (a time.Time), duration (a time.Duration), any (as
it is). `(Name` ... `)` encloses the fields of an embedded struct (Resources in HostConfig, the
NetworkSettings bases): templates reach them as the outer struct's own fields, as Go's
promoted fields, and fmt prints them as the nested `{...}` Go prints."""

from berth.gotemplate import GoStruct, GoTime, NilMap, NilSlice, Stringer

_STRUCTS = {
    "types.ContainerJSON": "ID=Id:s Created:s Path:s Args:[] State:*ContainerState Image:s ResolvConfPath:s "
                           "HostnamePath:s HostsPath:s LogPath:s Name:s RestartCount:i Driver:s "
                           "Platform:s MountLabel:s ProcessLabel:s AppArmorProfile:s ExecIDs:[] "
                           "HostConfig:*HostConfig GraphDriver:GraphDriverData SizeRw?:*i SizeRootFs?:*i "
                           "Mounts:[]MountPoint Config:*Config NetworkSettings:*NetworkSettings",
    "ContainerState": "Status:s Running:b Paused:b Restarting:b OOMKilled:b Dead:b Pid:i ExitCode:i Error:s "
                      "StartedAt:s FinishedAt:s Health?:*Health",
    "Health": "Status:s FailingStreak:i Log:[]HealthcheckResult",
    "HealthcheckResult": "Start:time End:time ExitCode:i Output:s",
    "HostConfig": "Binds:[] ContainerIDFile:s LogConfig:LogConfig NetworkMode:s PortBindings:map[]PortBinding "
                  "RestartPolicy:RestartPolicy AutoRemove:b VolumeDriver:s VolumesFrom:[] ConsoleSize:[] "
                  "Annotations?:map CapAdd:[] CapDrop:[] CgroupnsMode:s DNS=Dns:[] DNSOptions=DnsOptions:[] "
                  "DNSSearch=DnsSearch:[] ExtraHosts:[] GroupAdd:[] IpcMode:s Cgroup:s Links:[] OomScoreAdj:i "
                  "PidMode:s Privileged:b PublishAllPorts:b ReadonlyRootfs:b SecurityOpt:[] StorageOpt?:map "
                  "Tmpfs?:map UTSMode:s UsernsMode:s ShmSize:i Sysctls?:map Runtime?:s Isolation:s "
                  "(Resources CPUShares=CpuShares:i Memory:i NanoCPUs=NanoCpus:i CgroupParent:s BlkioWeight:i "
                  "BlkioWeightDevice:[]WeightDevice BlkioDeviceReadBps:[]ThrottleDevice "
                  "BlkioDeviceWriteBps:[]ThrottleDevice BlkioDeviceReadIOps:[]ThrottleDevice "
                  "BlkioDeviceWriteIOps:[]ThrottleDevice CPUPeriod=CpuPeriod:i CPUQuota=CpuQuota:i "
                  "CPURealtimePeriod=CpuRealtimePeriod:i CPURealtimeRuntime=CpuRealtimeRuntime:i CpusetCpus:s "
                  "CpusetMems:s Devices:[]DeviceMapping DeviceCgroupRules:[] DeviceRequests:[]DeviceRequest "
                  "KernelMemory?:i KernelMemoryTCP?:i MemoryReservation:i MemorySwap:i MemorySwappiness:*i "
                  "OomKillDisable:*b PidsLimit:*i Ulimits:[]Ulimit CPUCount=CpuCount:i CPUPercent=CpuPercent:i "
                  "IOMaximumIOps:i IOMaximumBandwidth:i ) "
                  "Mounts?:[] MaskedPaths:[] ReadonlyPaths:[] Init?:*b",
    "LogConfig": "Type:s Config:map",
    "RestartPolicy": "Name:s MaximumRetryCount:i",
    "PortBinding": "HostIP=HostIp:s HostPort:s",
    "WeightDevice": "Path:s Weight:i",
    "ThrottleDevice": "Path:s Rate:i",
    "DeviceMapping": "PathOnHost:s PathInContainer:s CgroupPermissions:s",
    "DeviceRequest": "Driver:s Count:i DeviceIDs:[] Capabilities:[] Options:map",
    "Ulimit": "Name:s Hard:i Soft:i",
    "GraphDriverData": "Data:map Name:s",
    "MountPoint": "Type?:s Name?:s Source:s Destination:s Driver?:s Mode:s RW:b Propagation:s",
    "Config": "Hostname:s Domainname:s User:s AttachStdin:b AttachStdout:b AttachStderr:b ExposedPorts?:map{} "
              "Tty:b OpenStdin:b StdinOnce:b Env:[] Cmd:[] Healthcheck?:*HealthConfig ArgsEscaped?:b Image:s "
              "Volumes:map{} WorkingDir:s Entrypoint:[] NetworkDisabled?:b MacAddress?:s OnBuild:[] Labels:map "
              "StopSignal?:s StopTimeout?:*i Shell?:[]",
    "HealthConfig": "Test:[] Interval?:duration Timeout?:duration StartPeriod?:duration StartInterval?:duration "
                    "Retries?:i",
    "NetworkSettings": "(NetworkSettingsBase Bridge:s SandboxID:s SandboxKey:s Ports:map[]PortBinding "
                       "HairpinMode:b LinkLocalIPv6Address:s LinkLocalIPv6PrefixLen:i SecondaryIPAddresses:[] "
                       "SecondaryIPv6Addresses:[] ) (DefaultNetworkSettings EndpointID:s Gateway:s "
                       "GlobalIPv6Address:s GlobalIPv6PrefixLen:i IPAddress:s IPPrefixLen:i IPv6Gateway:s "
                       "MacAddress:s ) Networks:map*EndpointSettings",
    "EndpointSettings": "IPAMConfig:*EndpointIPAMConfig Links:[] Aliases:[] MacAddress:s DriverOpts:map "
                        "GwPriority?:i NetworkID:s EndpointID:s Gateway:s IPAddress:s IPPrefixLen:i IPv6Gateway:s "
                        "GlobalIPv6Address:s GlobalIPv6PrefixLen:i DNSNames:[]",
    "EndpointIPAMConfig": "IPv4Address?:s IPv6Address?:s LinkLocalIPs?:[]",
    "image.InspectResponse": "ID=Id:s RepoTags:[] RepoDigests:[] Parent:s Comment:s Created?:s "
                             "DockerVersion?:s Author:s Config:*DockerOCIImageConfig Architecture:s Variant?:s Os:s "
                             "OsVersion?:s Size:i GraphDriver:GraphDriverData RootFS:RootFS Metadata:Metadata",
    # docker 28's image config: the OCI ImageConfig and docker's extension, embedded, every field omitempty
    "DockerOCIImageConfig": "(ImageConfig User?:s ExposedPorts?:map{} Env?:[] Entrypoint?:[] Cmd?:[] "
                            "Volumes?:map{} WorkingDir?:s Labels?:map StopSignal?:s ArgsEscaped?:b ) "
                            "(DockerOCIImageConfigExt Healthcheck?:*HealthConfig OnBuild?:[] Shell?:[] )",
    "RootFS": "Type:s Layers?:[]",
    "Metadata": "LastTagTime?:time",
    "network.Inspect": "Name:s ID=Id:s Created:time Scope:s Driver:s EnableIPv4:b EnableIPv6:b IPAM:IPAM "
                       "Internal:b Attachable:b Ingress:b ConfigFrom:ConfigReference ConfigOnly:b "
                       "Containers:map*EndpointResource Options:map Labels:map Peers?:[]",
    "IPAM": "Driver:s Options:map Config:[]IPAMConfig",
    "IPAMConfig": "Subnet?:s IPRange?:s Gateway?:s AuxAddress=AuxiliaryAddresses?:map",
    "ConfigReference": "Network:s",
    "EndpointResource": "Name:s EndpointID:s MacAddress:s IPv4Address:s IPv6Address:s",
    "volume.Volume": "ClusterVolume?:any CreatedAt?:s Driver:s Labels:map Mountpoint:s Name:s Options:map "
                     "Scope:s Status?:map UsageData?:any",
}

# structs whose JSON carries fields their Go type lacks, which docker's decoder drops: the image
# config (berth's records keep the container-config fields docker's older images had)
CLOSED = ("DockerOCIImageConfig",)

_ZERO = {"s": "", "b": False, "i": 0}
# the JSON shape each kind (by its first two characters) decodes from
_SHAPES = {"[]": list, "ma": dict, "ti": str, "du": int}

# types with a String() method: fmt prints them with it
_STRINGERS = {"Ulimit": lambda u: f"{u['Name']}={u['Soft']}:{u['Hard']}"}


def _fields(type_name: str) -> tuple[list[tuple[str, str, bool, str]], dict]:
    """(Go name, JSON key, omitempty, kind) of each field of a struct, in Go's order; and its
    embedded structs as {first field: (embedded type, its fields)}."""
    fields, embedded, group = [], {}, None
    for token in _STRUCTS[type_name].split():
        if token.startswith("("):
            group = (token[1:], [])
            continue
        if token == ")":
            embedded[group[1][0]] = (group[0], tuple(group[1]))
            group = None
            continue
        spelled, _, kind = token.partition(":")
        omitempty = spelled.endswith("?")
        go_name, _, json_key = spelled.rstrip("?").partition("=")
        fields.append((go_name, json_key or go_name, omitempty, kind))
        if group is not None:
            group[1].append(go_name)
    return fields, embedded


_PARSED: dict[str, tuple] = {}


def typed(value, kind: str):
    """The JSON `value` as the Go value of `kind` (a struct type name or a kind above); a
    value of another shape than the kind says stays as it is."""
    if value is not None and not isinstance(value, _SHAPES.get(kind[:2], dict if kind[:1].isupper() else object)):
        return value
    if kind in _ZERO or kind == "any":
        return _ZERO.get(kind) if value is None else value
    if kind == "time":
        return GoTime(value or "0001-01-01T00:00:00Z")
    if kind == "duration":
        from berth.gotime import go_duration  # lazy: only health checks have durations

        return Stringer(value or 0, go_duration(value or 0), "time.Duration")
    if kind.startswith("*"):
        return None if value is None else typed(value, kind[1:])
    if kind == "[]":
        return NilSlice() if value is None else value
    if kind.startswith("[]"):
        return NilSlice() if value is None else [None if v is None else typed(v, kind[2:]) for v in value]
    if kind == "map":
        return NilMap() if value is None else value
    if kind == "map{}":
        return NilMap() if value is None else {k: GoStruct("struct {}") for k in value}
    if kind.startswith("map"):
        element = kind[3:]
        return NilMap() if value is None else {k: typed(v, element) for k, v in value.items()}
    return _struct(value or {}, kind)


def _struct(record: dict, type_name: str) -> GoStruct:
    parsed = _PARSED.get(type_name)
    if parsed is None:
        parsed = _PARSED[type_name] = _fields(type_name)
    fields, embedded = parsed
    struct = GoStruct(type_name)
    struct.embedded = embedded or None
    json_fields = []
    for go_name, json_key, omitempty, kind in fields:
        struct[go_name] = typed(record.get(json_key), kind)
        json_fields.append((go_name, json_key, omitempty))
    known = {json_key for _, json_key, _, _ in fields}
    for key, value in record.items():  # a field berth has and the list does not: as it is
        if key not in known and type_name not in CLOSED:
            struct[key] = value
            json_fields.append((key, key, False))
    struct.json_fields = tuple(json_fields)
    struct.stringer = _STRINGERS.get(type_name)
    return struct


def struct_view(kind: str, record: dict) -> GoStruct:
    """The record inspect found (`kind`: container, image, volume or network) as docker's Go struct."""
    return _struct(record, {"container": "types.ContainerJSON", "image": "image.InspectResponse",
                            "volume": "volume.Volume", "network": "network.Inspect"}[kind])
