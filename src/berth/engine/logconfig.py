"""A container's logging driver (HostConfig.LogConfig): merged with the engine's defaults
(daemon.json "log-driver", "log-opts") and checked at create, in docker's words, and turned
into what its supervisor writes (log_target) at each start.

json-file is docker's; `local` is kept in json-file's format (docker's is protobuf) with
local's defaults; `none` keeps nothing; `syslog` sends each line to a syslog server (the
host's /dev/log, or --log-opt syslog-address) as docker's driver does, and keeps docker's
"dual logging" cache (a local log, unless cache-disabled) so `logs` still reads. journald is
refused where the host has none; the other drivers send logs to services berth does not
talk to. Only a container with a LogConfig of its own, or an engine with defaults, imports this."""

import os

from berth.errors import InvalidArgument, NotImplementedYet

DEFAULT_DRIVER = "json-file"
ATTRIBUTE_KEYS = ("labels", "labels-regex", "env", "env-regex", "tag")
ROTATION_KEYS = ("max-file", "max-size", "compress")
BUILTIN_KEYS = ("mode", "max-buffer-size")  # every driver's (logger.builtInLogOpts)
LOCAL_DEFAULTS = (20 * 1024 * 1024, 5, True)  # docker's local driver: max-size, max-file, compress
REMOTE_DRIVERS = ("gelf", "fluentd", "awslogs", "splunk", "gcplogs", "logentries", "etwlogs")
SYSLOG_KEYS = ("syslog-address", "syslog-facility", "syslog-format", "syslog-tls-ca-cert", "syslog-tls-cert",
               "syslog-tls-key", "syslog-tls-skip-verify")
CACHE_KEYS = {"cache-max-size": "max-size", "cache-max-file": "max-file", "cache-compress": "compress"}
# syslog facilities by name, as docker's driver knows them (their code; the priority is code << 3)
FACILITIES = {name: code for code, name in enumerate(
    ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp"))}
FACILITIES.update((f"local{n}", 16 + n) for n in range(8))
SYSLOG_FORMATS = ("", "rfc3164", "rfc5424", "rfc5424micro")
INIT_FAILED = "failed to initialize logging driver: "


def resolve(record: dict, settings) -> dict:
    """The container's LogConfig as docker's create leaves it (mergeAndVerifyLogConfig): the
    driver's engine default options filled in, each option checked, and what its first start
    would find wrong (a size, a tag template) found now: nothing is created for a typo."""
    if settings.log_driver != DEFAULT_DRIVER or settings.log_opts:  # dockerd would not have started
        try:
            validate(settings.log_driver, dict(settings.log_opts))
        except InvalidArgument as err:
            raise InvalidArgument(f"invalid log-driver or log-opts in {settings.config_file}: {err}") from None
    requested = record["HostConfig"].get("LogConfig") or {}
    driver = requested.get("Type") or settings.log_driver
    config = dict(requested.get("Config") or {})
    for key, value in settings.log_opts.items():
        if driver == settings.log_driver or key.startswith("cache-"):  # logcache.MergeDefaultLogConfig
            config.setdefault(key, value)
    validate(driver, config)
    if driver != "none":
        rotation(driver, config)
        attributes({**record, "HostConfig": {"LogConfig": {"Type": driver, "Config": config}}})
    return {"Type": driver, "Config": config}


def validate(driver: str, config: dict) -> None:
    """logger.ValidateLogOpts: the options every driver takes, the driver, then its own keys."""
    if driver == "none":
        return
    mode = config.get("mode", "")
    if mode not in ("", "blocking", "non-blocking"):
        raise InvalidArgument(f"logger: logging mode not supported: {mode}")
    if "max-buffer-size" in config:
        if mode != "non-blocking":
            raise InvalidArgument("logger: max-buffer-size option is only supported with 'mode=non-blocking'")
        from berth.units import ram_in_bytes  # lazy: only max-buffer-size

        try:
            ram_in_bytes(config["max-buffer-size"])
        except ValueError as err:
            raise InvalidArgument(f"error parsing option max-buffer-size: {err}") from None
    if config.get("cache-disabled"):
        _go_bool(config["cache-disabled"], f"invalid value for option cache-disabled: {config['cache-disabled']}")
    _check_driver(driver, config)
    for key in config:
        if key in BUILTIN_KEYS or key.startswith("cache-") or key in ATTRIBUTE_KEYS:
            continue
        if key in (SYSLOG_KEYS if driver == "syslog" else ROTATION_KEYS):
            continue
        if driver == "local":
            raise InvalidArgument(f"unknown log opt '{key}' for log driver local")
        raise InvalidArgument(f"unknown log opt '{key}' for {driver} log driver")


def _check_driver(driver: str, config: dict) -> None:
    if driver in ("json-file", "local"):
        return
    if driver == "journald":
        if not os.path.exists("/run/systemd/journal/socket"):
            raise InvalidArgument(INIT_FAILED + "journald is not enabled on this host")
        raise NotImplementedYet("log driver journald is not supported by berth yet: use json-file, local or none")
    if driver == "syslog":
        syslog_target(config)
        return
    if driver in REMOTE_DRIVERS:
        raise NotImplementedYet(f"log driver {driver} is not supported by berth: use json-file, local or none")
    raise InvalidArgument(f'error looking up logging plugin {driver}: plugin "{driver}" not found')


def syslog_target(config: dict) -> dict:
    """Where and how the syslog driver sends (docker's parseAddress, parseFacility and
    parseLogFormat, with their messages): {"transport", "address", "facility", "format"}."""
    address = config.get("syslog-address", "")
    if not address:
        if not os.path.exists("/dev/log"):
            raise InvalidArgument(INIT_FAILED + "Unix syslog delivery error")
        transport, target = "unixgram", "/dev/log"
    else:
        scheme, sep, rest = address.partition("://")
        if not sep:
            scheme, rest = "", address
        if scheme in ("unix", "unixgram"):
            if not os.path.exists(rest):
                raise InvalidArgument(f"stat {rest}: no such file or directory")
            transport, target = scheme, rest
        elif scheme in ("udp", "tcp"):
            host, colon, port = rest.rstrip("/").rpartition(":")
            if not colon or host.endswith(":") or (host.count(":") and not host.startswith("[")):
                host, port = rest.rstrip("/"), "514"  # docker's default port
            if not port.isdigit():
                raise InvalidArgument(f'parse "{address}": invalid port ":{port}" after host')
            transport, target = scheme, (host.strip("[]"), int(port))
        elif scheme == "tcp+tls":
            raise NotImplementedYet("syslog-address tcp+tls:// is not supported by berth yet: use udp:// or tcp://")
        else:
            raise InvalidArgument(f"unsupported scheme: '{scheme}'")
    facility = config.get("syslog-facility", "")
    if not facility:
        code = FACILITIES["daemon"]
    elif facility in FACILITIES:
        code = FACILITIES[facility]
    elif facility.isdigit() and 0 <= int(facility) <= 23:
        code = int(facility)
    else:
        raise InvalidArgument("invalid syslog facility")
    if config.get("syslog-format", "") not in SYSLOG_FORMATS:
        raise InvalidArgument("invalid syslog format")
    return {"transport": transport, "address": target, "facility": code, "format": config.get("syslog-format", "")}


def rotation(driver: str, config: dict) -> tuple[int, int, bool]:
    """(max size in bytes or -1, max files, compress) with docker's checks and messages: the
    json-file driver's (jsonfilelog.New) or the local driver's (local.newConfig); for syslog,
    its dual-logging cache's: the local driver's, from the cache-* options."""
    if driver == "syslog":
        driver, config = "local", {CACHE_KEYS[k]: v for k, v in config.items() if k in CACHE_KEYS}
    from berth.gotime import go_parse_int  # lazy: only a LogConfig with options
    from berth.units import from_human_size  # lazy: only a LogConfig with options

    local = driver == "local"
    max_size, max_files, compress = LOCAL_DEFAULTS if local else (-1, 1, False)
    if "max-size" in config:
        value = config["max-size"]
        try:
            max_size = from_human_size(value)
        except ValueError as err:
            raise InvalidArgument(INIT_FAILED + (f"invalid value for max-size: {value}: {err}" if local
                                                 else str(err))) from None
        if max_size <= 0 and not local:
            raise InvalidArgument(INIT_FAILED + "max-size must be a positive number")
    if "max-file" in config:
        value = config["max-file"]
        try:
            max_files = go_parse_int(value)
        except ValueError as err:
            atoi = str(err).replace("ParseInt", "Atoi")
            raise InvalidArgument(INIT_FAILED + (f"invalid value for max-file: {value}: {atoi}" if local
                                                 else atoi)) from None
        if max_files < (0 if local else 1):
            raise InvalidArgument(INIT_FAILED + ("max-file must not be negative" if local
                                                 else "max-file cannot be less than 1"))
    if "compress" in config:
        try:
            compress = _go_bool(config["compress"], "")
        except InvalidArgument as err:
            raise InvalidArgument(INIT_FAILED + (f"invalid boolean value for compress: {err}" if local
                                                 else str(err))) from None
    if local and compress and max_files <= 1:
        raise InvalidArgument(INIT_FAILED + "compression cannot be enabled when max file count is 1")
    if not local and compress and (max_files == 1 or max_size == -1):
        raise InvalidArgument(INIT_FAILED + "compress cannot be true when max-file is less than 2 or max-size "
                                            "is not set")
    return max_size, max(max_files, 1), compress


def _go_bool(value: str, message: str) -> bool:
    from berth.strconv import parse_bool  # lazy: only a LogConfig with options

    try:
        return parse_bool(value)
    except ValueError as err:
        raise InvalidArgument(message or str(err)) from None


def attributes(record: dict) -> dict:
    """docker's extra attributes of every entry (logger.Info.ExtraAttributes, then "tag"):
    the labels and environment variables the options name or match."""
    config = record["HostConfig"]["LogConfig"]["Config"]
    labels = record["Config"].get("Labels") or {}
    env = dict(item.split("=", 1) for item in record["Config"].get("Env") or () if "=" in item)
    attrs = {}
    for option, source in (("labels", labels), ("env", env)):
        for key in (config.get(option) or "").split(","):
            if key and key in source:
                attrs[key] = source[key]
        if config.get(option + "-regex"):
            pattern = _regexp(config[option + "-regex"])
            attrs.update((key, value) for key, value in source.items() if pattern.search(key))
    if config.get("tag"):
        attrs["tag"] = _tag(config["tag"], record)
    return attrs


def _regexp(text: str):
    import re  # lazy: only labels-regex/env-regex

    try:
        return re.compile(text)
    except re.error as err:
        raise InvalidArgument(f"{INIT_FAILED}error parsing regexp: {err}: `{text}`") from None


def _tag(template: str, record: dict) -> str:
    """loggerutils.ParseLogTag: the template run on docker's logger.Info of the container."""
    from berth.gotemplate import GoStruct, TemplateError, parse  # lazy: only a tag

    config = record["Config"]
    image_id = record.get("Image") or ""
    info = GoStruct("*logger.Info", {
        "Config": record["HostConfig"]["LogConfig"]["Config"], "ContainerID": record["Id"],
        "ContainerName": record["Name"], "ContainerEntrypoint": record.get("Path") or "",
        "ContainerArgs": list(record.get("Args") or ()), "ContainerImageID": image_id,
        "ContainerImageName": config.get("Image") or "", "ContainerCreated": record.get("Created") or "",
        "ContainerEnv": list(config.get("Env") or ()), "ContainerLabels": dict(config.get("Labels") or {}),
        "LogPath": record.get("LogPath") or "", "DaemonName": "docker",
        "ID": record["Id"][:12], "FullID": record["Id"], "Name": record["Name"].lstrip("/"),
        "ImageID": image_id[:12], "ImageFullID": image_id, "ImageName": config.get("Image") or "",
        "Command": " ".join([record.get("Path") or ""] + list(record.get("Args") or ())),
        "Hostname": os.uname().nodename,
    })
    try:
        return parse(template, "log-tag").execute(info)
    except TemplateError as err:
        raise InvalidArgument(INIT_FAILED + str(err)) from None


def log_file(record: dict) -> str:
    """Where the container's log is kept: LogPath for json-file; for local, docker's
    local-logs/container.log in the container's directory (the parent of its UpperDir), since
    docker's LogPath of a local container is ""; "" when nothing is kept."""
    driver = record["HostConfig"]["LogConfig"]["Type"]
    if driver == "json-file":
        return record["LogPath"]
    if driver == "local" or driver == "syslog" and not cache_disabled(record["HostConfig"]["LogConfig"]["Config"]):
        directory = os.path.dirname(record["GraphDriver"]["Data"]["UpperDir"])
        return os.path.join(directory, "local-logs", "container.log")
    return ""


def cache_disabled(config: dict) -> bool:
    return bool(config.get("cache-disabled")) and _go_bool(config["cache-disabled"], "")


def log_target(record: dict) -> dict | None:
    """What the supervisor writes (monitor.lean.open_log): None for `none`; for syslog, the
    server to send to (checked reachable now, so a start fails as docker's does) beside the cache."""
    log_config = record["HostConfig"]["LogConfig"]
    path = log_file(record)
    target = {}
    if log_config["Type"] == "syslog":
        syslog = syslog_target(log_config["Config"])
        syslog["tag"] = attributes(record).get("tag") or record["Id"][:12]
        _reachable(syslog)
        target["syslog"] = syslog
    if not path:
        return target or None
    max_size, max_files, compress = rotation(log_config["Type"], log_config["Config"])
    attrs = attributes(record) if log_config["Type"] != "syslog" else {}
    return {**target, "path": path, "max_size": max_size, "max_files": max_files, "compress": compress,
            "attrs": attrs}


def _reachable(syslog: dict) -> None:
    """A stream server that is not listening fails the start, in docker's words."""
    if syslog["transport"] not in ("tcp", "unix"):
        return
    import socket  # lazy: only syslog

    family = socket.AF_UNIX if syslog["transport"] == "unix" else socket.AF_INET6 if ":" in syslog["address"][0] \
        else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    probe.settimeout(5)
    try:
        probe.connect(syslog["address"])
    except OSError as err:
        address = syslog["address"]
        where = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
        raise InvalidArgument(f"{INIT_FAILED}dial {syslog['transport']} {where}: connect: "
                              f"{os.strerror(err.errno).lower() if err.errno else err}") from None
    finally:
        probe.close()
