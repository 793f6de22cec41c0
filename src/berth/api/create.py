"""POST /containers/create: docker's Config + HostConfig + NetworkingConfig JSON -> the
engine's CreateRequest, checked as dockerd checks it (the same engine checks `berth create`'s
flags go through, berth.engine.create_checks), so the same settings make the same container."""

from berth.engine.containers import CreateRequest
from berth.errors import InvalidArgument

# HostConfig resource fields (berth.engine.resources), each with the value that means "not set"
RESOURCE_FIELDS = {"Memory": 0, "MemorySwap": 0, "MemoryReservation": 0, "MemorySwappiness": -1,
                   "OomKillDisable": False, "CpuShares": 0, "NanoCpus": 0, "CpuPeriod": 0, "CpuQuota": 0,
                   "CpusetCpus": "", "CpusetMems": "", "PidsLimit": 0, "DeviceCgroupRules": None, "BlkioWeight": 0,
                   "BlkioWeightDevice": None, "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
                   "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuRealtimePeriod": 0,
                   "CpuRealtimeRuntime": 0, "KernelMemory": 0, "OomScoreAdj": 0}
# HostConfig fields taken as they are, when set
PLAIN_FIELDS = ("Privileged", "ReadonlyRootfs", "CgroupParent", "StorageOpt", "Annotations", "ContainerIDFile",
                "ConsoleSize", "MaskedPaths", "ReadonlyPaths")
UNSET = (None, "", [], {}, False, 0)

# The Go types of the fields docker's decoder reads (kinds: s string, b bool, i integer, []s
# list of strings, ss StrSlice (a string or a list of them), map{s} map of strings, obj an
# object, []obj a list of objects): a value of another JSON type is its 400.
_S, _B, _I = "string", "bool", "int64"
CONFIG_TYPES = {
    "Hostname": _S, "Domainname": _S, "User": _S, "AttachStdin": _B, "AttachStdout": _B, "AttachStderr": _B,
    "ExposedPorts": "obj", "Tty": _B, "OpenStdin": _B, "StdinOnce": _B, "Env": "[]string", "Cmd": "strslice",
    "Healthcheck": "obj", "ArgsEscaped": _B, "Image": _S, "Volumes": "obj", "WorkingDir": _S, "Entrypoint": "strslice",
    "NetworkDisabled": _B, "MacAddress": _S, "OnBuild": "[]string", "Labels": "map[string]string", "StopSignal": _S,
    "StopTimeout": _I, "Shell": "[]string", "HostConfig": "obj", "NetworkingConfig": "obj"}
HOST_CONFIG_TYPES = {
    "Binds": "[]string", "ContainerIDFile": _S, "LogConfig": "obj", "NetworkMode": _S, "PortBindings": "obj",
    "RestartPolicy": "obj", "AutoRemove": _B, "VolumeDriver": _S, "VolumesFrom": "[]string", "ConsoleSize": "[]int",
    "Annotations": "map[string]string", "CapAdd": "strslice", "CapDrop": "strslice", "CgroupnsMode": _S,
    "Dns": "[]string", "DnsOptions": "[]string", "DnsSearch": "[]string", "ExtraHosts": "[]string",
    "GroupAdd": "[]string", "IpcMode": _S, "Cgroup": _S, "Links": "[]string", "OomScoreAdj": _I, "PidMode": _S,
    "Privileged": _B, "PublishAllPorts": _B, "ReadonlyRootfs": _B, "SecurityOpt": "[]string",
    "StorageOpt": "map[string]string", "Tmpfs": "map[string]string", "UTSMode": _S, "UsernsMode": _S, "ShmSize": _I,
    "Sysctls": "map[string]string", "Runtime": _S, "Isolation": _S, "CpuShares": _I, "Memory": _I, "NanoCpus": _I,
    "CgroupParent": _S, "BlkioWeight": _I, "BlkioWeightDevice": "[]obj", "BlkioDeviceReadBps": "[]obj",
    "BlkioDeviceWriteBps": "[]obj", "BlkioDeviceReadIOps": "[]obj", "BlkioDeviceWriteIOps": "[]obj",
    "CpuPeriod": _I, "CpuQuota": _I, "CpuRealtimePeriod": _I, "CpuRealtimeRuntime": _I, "CpusetCpus": _S,
    "CpusetMems": _S, "Devices": "[]obj", "DeviceCgroupRules": "[]string", "DeviceRequests": "[]obj",
    "KernelMemory": _I, "KernelMemoryTCP": _I, "MemoryReservation": _I, "MemorySwap": _I, "MemorySwappiness": _I,
    "OomKillDisable": _B, "PidsLimit": _I, "Ulimits": "[]obj", "CpuCount": _I, "CpuPercent": _I,
    "IOMaximumIOps": _I, "IOMaximumBandwidth": _I, "Mounts": "[]obj", "MaskedPaths": "[]string",
    "ReadonlyPaths": "[]string", "Init": _B}


def _fits(value, go_type: str) -> bool:
    if value is None:  # null leaves a Go field at its zero value
        return True
    if go_type == _S:
        return isinstance(value, str)
    if go_type == _B:
        return isinstance(value, bool)
    if go_type == _I:
        return isinstance(value, int) and not isinstance(value, bool)
    if go_type == "obj":
        return isinstance(value, dict)
    if go_type == "strslice" and isinstance(value, str):
        return True
    if go_type.startswith("map["):
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    element = {"strslice": _S, "[]string": _S, "[]int": _I, "[]obj": "obj"}[go_type]
    return isinstance(value, list) and all(v is not None and _fits(v, element) for v in value)


def _json_type(value) -> str:
    """What Go's decoder calls a JSON value in its errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "value")


def check_types(body: dict) -> None:
    """docker's decoder: a field holding another JSON type than its Go type is refused (400)."""
    for struct, fields, values in (("ContainerConfigWrapper", CONFIG_TYPES, body),
                                   ("ContainerConfigWrapper.HostConfig", HOST_CONFIG_TYPES,
                                    body.get("HostConfig") if isinstance(body.get("HostConfig"), dict) else {})):
        for key, go_type in fields.items():
            if key in values and not _fits(values[key], go_type):
                shown = {"strslice": "strslice.StrSlice", "obj": "struct"}.get(go_type, go_type)
                raise InvalidArgument(f"json: cannot unmarshal {_json_type(values[key])} into Go struct field "
                                      f"{struct}.{key} of type {shown}")


def create_request(body: dict, name: str | None, engine) -> CreateRequest:
    """The CreateRequest of a create's JSON body (Config fields at the top, HostConfig and
    NetworkingConfig inside)."""
    check_types(body)
    host = _object(body, "HostConfig")
    image = body.get("Image")
    if not image or not isinstance(image, str):
        raise InvalidArgument("Config cannot be empty in order to create a container")
    endpoint, networks = check_endpoints(body, host.get("NetworkMode") or None)
    warnings: list[str] = []
    fields = {**_config_fields(body), **_network_fields(host), **_mount_fields(body, host)}
    return CreateRequest(
        image, name=name or None,
        auto_remove=bool(host.get("AutoRemove")),
        restart=_restart_policy(host),
        init=bool(host.get("Init")),
        dns=_strings(host, "Dns"),
        dns_search=_strings(host, "DnsSearch"),
        dns_options=_strings(host, "DnsOptions"),
        extra_hosts=_strings(host, "ExtraHosts"),
        host_config={**_isolation_fields(host), **_resource_fields(host, warnings), **_log_fields(host),
                     **_runtime_fields(host, engine)},
        warnings=warnings,
        endpoint=endpoint,
        networks=networks,
        **fields,
    )


def _object(body: dict, key: str) -> dict:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid JSON: {key} must be an object")
    return value


def _strings(body: dict, key: str) -> list[str]:
    """A list of strings (docker's StrSlice also takes one string)."""
    value = body.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"invalid JSON: {key} must be a list of strings")
    return value


def _config_fields(body: dict) -> dict:
    entrypoint = body.get("Entrypoint")
    if entrypoint is not None:
        entrypoint = _strings(body, "Entrypoint")
        entrypoint = "" if entrypoint == [""] else (entrypoint or None)  # [] is docker's "not given"
    env = _strings(body, "Env")
    for item in env:
        if item.startswith("="):
            raise InvalidArgument(f"invalid environment variable: {item}")
    labels = _object(body, "Labels")
    open_stdin = bool(body.get("OpenStdin"))
    stop_timeout = body.get("StopTimeout")
    if stop_timeout is not None and not isinstance(stop_timeout, int):
        raise InvalidArgument("invalid JSON: StopTimeout must be an integer")
    config = {"AttachStdin": bool(body.get("AttachStdin")), "AttachStdout": bool(body.get("AttachStdout")),
              "AttachStderr": bool(body.get("AttachStderr")), "StdinOnce": bool(body.get("StdinOnce"))}
    if body.get("Domainname"):
        config["Domainname"] = body["Domainname"]
    if body.get("MacAddress"):
        from berth.engine.run_options import check_mac_address  # lazy: only a MAC address

        config["MacAddress"] = check_mac_address(body["MacAddress"])
    healthcheck = body.get("Healthcheck")
    if healthcheck is not None and not isinstance(healthcheck, dict):
        raise InvalidArgument("invalid JSON: Healthcheck must be an object")
    return {"cmd": _strings(body, "Cmd"), "entrypoint": entrypoint, "env": env,
            "workdir": body.get("WorkingDir") or None, "user": body.get("User") or None,
            "hostname": body.get("Hostname") or None, "labels": {str(k): str(v) for k, v in labels.items()},
            "tty": bool(body.get("Tty")), "open_stdin": open_stdin, "stop_signal": body.get("StopSignal") or None,
            "stop_timeout": stop_timeout, "exposed_ports": _exposed_ports(body), "config": config,
            "healthcheck": healthcheck or None}


def _exposed_ports(body: dict) -> dict:
    ports = _object(body, "ExposedPorts")
    if not ports:
        return {}
    from berth.engine.ports import parse_expose  # lazy: only exposed ports

    for port in ports:  # "80/tcp", checked as --expose checks it
        parse_expose([port])
    return dict(sorted((port if "/" in port else port + "/tcp", {}) for port in ports))


def _network_fields(host: dict) -> dict:
    mode = host.get("NetworkMode") or None
    fields = {"network": None if mode == "default" else mode, "publish_all": bool(host.get("PublishAllPorts"))}
    bindings = _object(host, "PortBindings")
    if bindings:
        fields["port_bindings"] = _port_bindings(bindings)
    links = _strings(host, "Links")
    if links:
        from berth.engine.ports import parse_links  # lazy: only links

        fields["links"] = parse_links(links)
    return fields


def _port_bindings(bindings: dict) -> dict:
    """HostConfig.PortBindings, each checked as `-p` checks its spec."""
    from berth.engine.ports import parse_publish  # lazy: only published ports

    checked = {}
    for port, wanted in bindings.items():
        if wanted is None:
            continue
        if not isinstance(wanted, list) or not all(isinstance(b, dict) for b in wanted):
            raise InvalidArgument(f"invalid JSON: PortBindings of {port} must be a list of objects")
        for binding in wanted or [{}]:
            ip, host_port = binding.get("HostIp") or "", binding.get("HostPort") or ""
            spec = f"{'[' + ip + ']' if ':' in ip else ip}:{host_port}:{port}" if ip else f"{host_port}:{port}"
            parse_publish([spec])
        key = port if "/" in port else port + "/tcp"
        checked[key] = [{"HostIp": b.get("HostIp") or "", "HostPort": b.get("HostPort") or ""} for b in wanted]
    return dict(sorted(checked.items()))


def _mount_fields(body: dict, host: dict) -> dict:
    binds, volumes = _strings(host, "Binds"), list(_object(body, "Volumes"))
    mounts, tmpfs, volumes_from = host.get("Mounts") or [], _object(host, "Tmpfs"), _strings(host, "VolumesFrom")
    if not (binds or volumes or mounts or tmpfs or volumes_from):
        return {}
    if not isinstance(mounts, list) or not all(isinstance(m, dict) for m in mounts):
        raise InvalidArgument("invalid JSON: Mounts must be a list of objects")
    from berth.engine.mounts import MountRequest  # lazy: only mounts

    return {"mounts": MountRequest(binds, volumes, mounts, tmpfs, volumes_from)}


def _restart_policy(host: dict) -> dict:
    policy = _object(host, "RestartPolicy")
    if not policy.get("Name") or policy == {"Name": "no", "MaximumRetryCount": 0}:
        return {"Name": "no", "MaximumRetryCount": 0}
    from berth.engine.create_checks import check_restart_policy  # lazy: only a restart policy

    return check_restart_policy(policy)


def _isolation_fields(host: dict) -> dict:
    """Namespace modes, privileges, capabilities, security options, sysctls, groups."""
    from berth.engine import create_checks  # lazy: only creates

    out = {key: host[key] for key in PLAIN_FIELDS if host.get(key) not in (None, "", False)}
    if "ConsoleSize" in out and out["ConsoleSize"] in ([0, 0], []):
        del out["ConsoleSize"]
    for field, valid, kind in (("IpcMode", create_checks.valid_ipc_mode, "IPC"),
                               ("PidMode", create_checks.valid_pid_mode, "PID"),
                               ("UTSMode", create_checks.valid_uts_mode, "UTS"),
                               ("CgroupnsMode", create_checks.valid_cgroupns_mode, "cgroup namespace"),
                               ("UsernsMode", create_checks.valid_userns_mode, "user namespace")):
        mode = host.get(field) or ""
        if not isinstance(mode, str) or not valid(mode):
            raise InvalidArgument(f"invalid {kind} mode: {mode}")
        if mode:
            out[field] = mode
    if host.get("ShmSize"):
        out["ShmSize"] = create_checks.check_shm_size(host["ShmSize"])
    sysctls = _object(host, "Sysctls")
    for key in sysctls:
        if not create_checks.sysctl_allowed(key):
            raise InvalidArgument(f"sysctl '{key}' is not allowed")
    if sysctls:
        out["Sysctls"] = dict(sysctls)
    groups = _strings(host, "GroupAdd")
    if groups:
        out["GroupAdd"] = groups
    out.update(_security_fields(host))
    return out


def _security_fields(host: dict) -> dict:
    out = {}
    if host.get("CapAdd") or host.get("CapDrop"):
        from berth.engine.security import normalize_caps  # lazy: only capabilities

        out["CapAdd"], out["CapDrop"] = normalize_caps(_strings(host, "CapAdd"), _strings(host, "CapDrop"))
    security_opt = _strings(host, "SecurityOpt")
    if security_opt:
        from berth.engine.security import security_options  # lazy: only security options

        security_options(security_opt)  # the daemon's checks: docker's CLI read a seccomp file already
        out["SecurityOpt"] = security_opt
    return out


def _resource_fields(host: dict, warnings: list[str]) -> dict:
    """The resource limits, devices and ulimits set (not docker's "unset" values), checked by
    the engine as the run flags are."""
    fields = {key: host[key] for key, unset in RESOURCE_FIELDS.items() if host.get(key) not in (None, unset)}
    if fields.get("PidsLimit", 1) <= 0:  # docker: 0 or negative is no limit
        del fields["PidsLimit"]
    devices = host.get("Devices") or []
    ulimits = host.get("Ulimits") or []
    if not (fields or devices or ulimits):
        return {}
    from berth.engine import resources  # lazy: only resource fields

    if devices:
        fields["Devices"] = [resources.parse_device(_device_spec(d)) for d in devices]
        for mapping in fields["Devices"]:
            resources.device_nodes(mapping)  # the host node must exist now: nothing is created for a typo
    if ulimits:
        fields["Ulimits"] = resources.parse_ulimits(_ulimit_spec(u) for u in ulimits)
    for rule in fields.get("DeviceCgroupRules") or ():
        resources.parse_device_cgroup_rule(rule)
    return resources.checked_host_config(fields, warnings)


def _device_spec(device) -> str:
    if not isinstance(device, dict) or not device.get("PathOnHost"):
        raise InvalidArgument("invalid JSON: a device needs a PathOnHost")
    target = device.get("PathInContainer") or device["PathOnHost"]
    return f"{device['PathOnHost']}:{target}:{device.get('CgroupPermissions') or 'rwm'}"


def _ulimit_spec(ulimit) -> str:
    if not isinstance(ulimit, dict) or not isinstance(ulimit.get("Soft"), int) or \
            not isinstance(ulimit.get("Hard"), int):
        raise InvalidArgument("invalid JSON: a ulimit needs a Name, Soft and Hard")
    return f"{ulimit.get('Name')}={ulimit['Soft']}:{ulimit['Hard']}"


def _log_fields(host: dict) -> dict:
    log = _object(host, "LogConfig")
    driver, config = log.get("Type") or "", _object(log, "Config")
    if not driver and not config:
        return {}
    from berth.engine.create_checks import check_log_request  # lazy: only a log config

    check_log_request(driver, config)
    return {"LogConfig": {"Type": driver, "Config": {str(k): str(v) for k, v in config.items()}}}


def _runtime_fields(host: dict, engine) -> dict:
    """Runtime, isolation, volume driver and device requests (GPUs): what berth can honour, or
    docker's refusal of what it cannot."""
    from berth.engine import run_options  # lazy: only these fields

    out = {}
    if host.get("Runtime"):
        out["Runtime"] = run_options.check_runtime(host["Runtime"], engine.settings)
    if host.get("Isolation"):
        out["Isolation"] = run_options.check_isolation(host["Isolation"])
    if host.get("VolumeDriver"):
        out["VolumeDriver"] = run_options.check_volume_driver(host["VolumeDriver"])
    if host.get("DeviceRequests"):
        run_options.check_gpus("all")
    return out


def check_endpoints(body: dict, mode: str | None) -> tuple[dict | None, dict]:
    """NetworkingConfig: the endpoint on the container's network (NetworkMode), checked as the
    run flags asking for the same are (addresses and aliases only on a user-defined network).
    Returns its EndpointSettings for the engine, and those of the other networks named (API
    1.44+: a container created on several networks)."""
    endpoints = _object(_object(body, "NetworkingConfig"), "EndpointsConfig")
    found = None
    others = {name: endpoint or {} for name, endpoint in endpoints.items() if name != (mode or "default")
              and not (mode in (None, "default") and name == "bridge")}
    if others and len(endpoints) == 1 and not mode:
        others = {}  # one endpoint and no mode: it is the container's network (the docker CLI's default)
    for name, endpoint in endpoints.items():
        endpoint = endpoint or {}
        ipam = endpoint.get("IPAMConfig") or {}
        ip, ip6 = ipam.get("IPv4Address") or None, ipam.get("IPv6Address") or None
        aliases, link_local = endpoint.get("Aliases") or [], ipam.get("LinkLocalIPs") or []
        if ip or ip6 or aliases or link_local:
            from berth.engine.run_options import check_endpoint, endpoint_settings  # lazy: only endpoint settings

            check_endpoint(ip, ip6, aliases, link_local, name)
            if name == (mode or name):
                found = endpoint_settings(ip, aliases, link_local)
    return found, {name: endpoint for name, endpoint in others.items() if isinstance(endpoint, dict)}
