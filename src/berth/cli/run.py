"""`berth run`, `create` and `start`: parse docker's flags into a CreateRequest, start the
container and, attached, stream its stdio until it ends (berth.engine.attach: through its
supervisor's attach socket, or supervised by us when nothing needs it to outlive us); exit
with its code."""

import _signal as signal  # `signal` imports enum: ~4 ms on every run
import os
import sys

from berth.cli.flags import BOOL, INT, LIST, STRING, Command, Flag, help_text, parse
from berth.cli.terminal import FORWARDED_SIGNALS, Attached, hold_std_fds
from berth.engine.containers import CreateRequest, is_running
from berth.errors import BerthError, InvalidArgument, NotImplementedYet, UsageError

CREATE_FLAGS = [
    Flag("name", None, STRING, None, "Assign a name to the container"),
    Flag("env", "e", LIST, (), "Set environment variables"),
    Flag("env-file", None, LIST, (), "Read in a file of environment variables"),
    Flag("workdir", "w", STRING, None, "Working directory inside the container"),
    Flag("user", "u", STRING, None, "Username or UID (format: <name|uid>[:<group|gid>])"),
    Flag("entrypoint", None, STRING, None, "Overwrite the default ENTRYPOINT of the image"),
    Flag("hostname", "h", STRING, None, "Container host name"),
    Flag("label", "l", LIST, (), "Set meta data on a container"),
    Flag("label-file", None, LIST, (), "Read in a line delimited file of labels"),
    Flag("interactive", "i", BOOL, False, "Keep STDIN open even if not attached"),
    Flag("tty", "t", BOOL, False, "Allocate a pseudo-TTY"),
    Flag("rm", None, BOOL, False, "Automatically remove the container and its resources when it exits"),
    Flag("network", None, STRING, None, "Connect a container to a network: bridge, none, host, container:<name|id>"),
    Flag("publish", "p", LIST, (), "Publish a container's port(s) to the host"),
    Flag("publish-all", "P", BOOL, False, "Publish all exposed ports to random ports"),
    Flag("expose", None, LIST, (), "Expose a port or a range of ports"),
    Flag("link", None, LIST, (), "Add link to another container"),
    Flag("ipc", None, STRING, None, "IPC mode to use"),
    Flag("pid", None, STRING, None, "PID namespace to use"),
    Flag("uts", None, STRING, None, "UTS namespace to use"),
    Flag("cgroupns", None, STRING, None, "Cgroup namespace to use (host|private)"),
    Flag("cgroup-parent", None, STRING, None, "Optional parent cgroup for the container"),
    Flag("storage-opt", None, LIST, (), "Storage driver options for the container"),
    Flag("shm-size", None, STRING, None, "Size of /dev/shm"),
    Flag("privileged", None, BOOL, False, "Give extended privileges to this container"),
    Flag("read-only", None, BOOL, False, "Mount the container's root filesystem as read only"),
    Flag("sysctl", None, LIST, (), "Sysctl options"),
    Flag("group-add", None, LIST, (), "Add additional groups to join"),
    Flag("userns", None, STRING, None, "User namespace to use"),
    Flag("cap-add", None, LIST, (), "Add Linux capabilities"),
    Flag("cap-drop", None, LIST, (), "Drop Linux capabilities"),
    Flag("security-opt", None, LIST, (), "Security Options"),
    Flag("lxc-conf", None, LIST, (), "(removed with docker's LXC driver)"),
    Flag("dns", None, LIST, (), "Set custom DNS servers"),
    Flag("dns-search", None, LIST, (), "Set custom DNS search domains"),
    Flag("dns-option", None, LIST, (), "Set DNS options"),
    Flag("dns-opt", None, LIST, (), "Set DNS options (alias of --dns-option)"),
    Flag("add-host", None, LIST, (), "Add a custom host-to-IP mapping (host:ip)"),
    Flag("restart", None, STRING, "no", "Restart policy to apply when a container exits"),
    Flag("stop-signal", None, STRING, None, "Signal to stop the container"),
    Flag("stop-timeout", None, "int", None, "Timeout (in seconds) to stop a container"),
    Flag("init", None, BOOL, False, "Run an init inside the container that forwards signals and reaps processes"),
    Flag("net", None, STRING, None, "Connect a container to a network (alias of --network)"),
    Flag("volume", "v", LIST, (), "Bind mount a volume"),
    Flag("mount", None, LIST, (), "Attach a filesystem mount to the container"),
    Flag("tmpfs", None, LIST, (), "Mount a tmpfs directory"),
    Flag("volumes-from", None, LIST, (), "Mount volumes from the specified container(s)"),
    # resource limits, devices, ulimits: berth.engine.resources (FLAG_DESTS lists these)
    Flag("memory", "m", STRING, None, "Memory limit", "bytes"),
    Flag("memory-swap", None, STRING, None, "Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
         "bytes"),
    Flag("memory-reservation", None, STRING, None, "Memory soft limit", "bytes"),
    Flag("memory-swappiness", None, INT, -1, "Tune container memory swappiness (0 to 100)"),
    Flag("oom-kill-disable", None, BOOL, False, "Disable OOM Killer"),
    Flag("cpu-shares", "c", INT, 0, "CPU shares (relative weight)"),
    Flag("cpus", None, STRING, None, "Number of CPUs", "decimal"),
    Flag("cpu-period", None, INT, 0, "Limit CPU CFS (Completely Fair Scheduler) period"),
    Flag("cpu-quota", None, INT, 0, "Limit CPU CFS (Completely Fair Scheduler) quota"),
    Flag("cpuset-cpus", None, STRING, None, "CPUs in which to allow execution (0-3, 0,1)"),
    Flag("cpuset-mems", None, STRING, None, "MEMs in which to allow execution (0-3, 0,1)"),
    Flag("pids-limit", None, INT, 0, "Tune container pids limit (set -1 for unlimited)"),
    Flag("device", None, LIST, (), "Add a host device to the container"),
    Flag("device-cgroup-rule", None, LIST, (), "Add a rule to the cgroup allowed devices list"),
    Flag("ulimit", None, LIST, (), "Ulimit options", "ulimit"),
    Flag("log-driver", None, STRING, None, "Logging driver for the container"),
    Flag("log-opt", None, LIST, (), "Log driver options"),
    # health checks: berth.cli.health reads these (HEALTH_FLAGS)
    Flag("health-cmd", None, STRING, None, "Command to run to check health"),
    Flag("health-interval", None, STRING, None, "Time between running the check (ms|s|m|h) (default 0s)", "duration"),
    Flag("health-retries", None, INT, 0, "Consecutive failures needed to report unhealthy"),
    Flag("health-start-interval", None, STRING, None,
         "Time between running the check during the start period (ms|s|m|h) (default 0s)", "duration"),
    Flag("health-start-period", None, STRING, None, "Start period for the container to initialize before starting "
         "health-retries countdown (ms|s|m|h) (default 0s)", "duration"),
    Flag("health-timeout", None, STRING, None, "Maximum time to allow one check to run (ms|s|m|h) (default 0s)",
         "duration"),
    Flag("no-healthcheck", None, BOOL, False, "Disable any container-specified HEALTHCHECK"),
    Flag("oom-score-adj", None, INT, 0, "Tune host's OOM preferences (-1000 to 1000)"),
    Flag("cpu-rt-period", None, INT, 0, "Limit CPU real-time period in microseconds"),
    Flag("cpu-rt-runtime", None, INT, 0, "Limit CPU real-time runtime in microseconds"),
    Flag("blkio-weight", None, STRING, None, "Block IO (relative weight), between 10 and 1000, or 0 to disable",
         "uint16"),
    Flag("blkio-weight-device", None, LIST, (), "Block IO weight (relative device weight)"),
    Flag("device-read-bps", None, LIST, (), "Limit read rate (bytes per second) from a device"),
    Flag("device-read-iops", None, LIST, (), "Limit read rate (IO per second) from a device"),
    Flag("device-write-bps", None, LIST, (), "Limit write rate (bytes per second) to a device"),
    Flag("device-write-iops", None, LIST, (), "Limit write rate (IO per second) to a device"),
    Flag("kernel-memory", None, STRING, None, "Kernel memory limit (deprecated: no effect)", "bytes"),
    # Windows-only in docker: refused on Linux as its CLI refuses them (refused_windows_only)
    Flag("cpu-count", None, INT, 0, "CPU count (Windows only)"),
    Flag("cpu-percent", None, INT, 0, "CPU percent (Windows only)"),
    Flag("io-maxbandwidth", None, STRING, None, "Maximum IO bandwidth limit for the system drive (Windows only)",
         "bytes"),
    Flag("io-maxiops", None, STRING, None, "Maximum IOps limit for the system drive (Windows only)", "uint"),
    # run ergonomics (issue 14)
    Flag("annotation", None, LIST, (), "Add an annotation to the container (passed through to the OCI runtime)",
         "map"),
    Flag("attach", "a", LIST, (), "Attach to STDIN, STDOUT or STDERR"),
    Flag("cidfile", None, STRING, None, "Write the container ID to the file"),
    Flag("disable-content-trust", None, BOOL, True, "Skip image verification (default true)"),
    Flag("domainname", None, STRING, None, "Container NIS domain name"),
    Flag("gpus", None, STRING, None, "GPU devices to add to the container ('all' to pass all GPUs)", "gpu-request"),
    Flag("ip", None, STRING, None, "IPv4 address (e.g., 172.30.100.104)"),
    Flag("ip6", None, STRING, None, "IPv6 address (e.g., 2001:db8::33)"),
    Flag("isolation", None, STRING, None, "Container isolation technology"),
    Flag("link-local-ip", None, LIST, (), "Container IPv4/IPv6 link-local addresses"),
    Flag("mac-address", None, STRING, None, "Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    Flag("network-alias", None, LIST, (), "Add network-scoped alias for the container"),
    Flag("platform", None, STRING, None, "Set platform if server is multi-platform capable"),
    Flag("pull", None, STRING, "missing", 'Pull image before running ("always", "missing", "never")'),
    Flag("quiet", "q", BOOL, False, "Suppress the pull output"),
    Flag("runtime", None, STRING, None, "Runtime to use for this container"),
    Flag("use-api-socket", None, BOOL, False, "Bind mount Docker API socket and required auth"),
    Flag("volume-driver", None, STRING, None, "Optional volume driver for the container"),
]
HEALTH_FLAGS = ("health_cmd", "health_interval", "health_retries", "health_start_interval", "health_start_period",
                "health_timeout", "no_healthcheck")
WINDOWS_ONLY = ("cpu-count", "cpu-percent", "io-maxbandwidth", "io-maxiops")
DETACH_KEYS = Flag("detach-keys", None, STRING, None, "Override the key sequence for detaching a container")
RUN = Command("run", "berth run [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a new container from an image",
              CREATE_FLAGS + [Flag("detach", "d", BOOL, False, "Run container in background and print container ID"),
                              DETACH_KEYS,
                              Flag("sig-proxy", None, BOOL, True, "Proxy received signals to the process")],
              interspersed=False, min_args=1)
CREATE = Command("create", "berth create [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container",
                 CREATE_FLAGS, interspersed=False, min_args=1)
START = Command("start", "berth start [OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers",
                [Flag("attach", "a", BOOL, False, "Attach STDOUT/STDERR and forward signals"),
                 Flag("interactive", "i", BOOL, False, "Attach container's STDIN"), DETACH_KEYS,
                 Flag("checkpoint", None, STRING, None, "Restore from this checkpoint"),
                 Flag("checkpoint-dir", None, STRING, None, "Use a custom checkpoint storage directory")],
                min_args=1)


def _help(command: Command, opts) -> bool:
    if opts.help:
        sys.stdout.write(help_text(command))
        return True
    return False


def expand_env(values: list[str]) -> list[str]:
    """`-e KEY` (no =) takes KEY's value from our environment, and is dropped if unset."""
    env = []
    for item in values:
        if "=" in item:
            if item.startswith("="):
                raise InvalidArgument(f"invalid environment variable: {item}")
            env.append(item)
        elif item in os.environ:
            env.append(f"{item}={os.environ[item]}")
    return env


def parse_labels(values: list[str], files: list[str]) -> dict:
    labels = {}
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                values = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")] + list(values)
        except OSError as err:
            raise InvalidArgument(f"open {path}: {err.strerror.lower()}") from None
    for item in values:
        key, _, value = item.partition("=")
        labels[key] = value
    return labels


def request_from(opts, args: list[str], engine=None) -> CreateRequest:
    env = []
    if opts.env_file:
        from berth.cli.run_files import read_env_file  # lazy: only --env-file

        for path in opts.env_file:
            env.extend(read_env_file(path))
    env.extend(expand_env(opts.env))
    warnings: list[str] = []  # docker's create Warnings: shown once the container exists
    config, host_config = ergonomics_request(engine, opts, args[0])
    host_config.update(isolation_request(opts, warnings))
    return CreateRequest(
        args[0],
        name=opts.name,
        cmd=args[1:],
        entrypoint=opts.entrypoint,
        env=env,
        workdir=opts.workdir,
        user=opts.user,
        hostname=opts.hostname,
        labels=parse_labels(opts.label, opts.label_file),
        tty=opts.tty,
        open_stdin=opts.interactive,
        detached=bool(getattr(opts, "detach", False)),
        auto_remove=opts.rm,
        network=opts.network or opts.net,
        restart=parse_restart_policy(opts.restart),
        stop_signal=opts.stop_signal,
        stop_timeout=opts.stop_timeout,
        init=opts.init,
        dns=opts.dns,
        dns_search=opts.dns_search,
        dns_options=opts.dns_option + opts.dns_opt,
        extra_hosts=opts.add_host,
        **network_request(opts),
        warnings=warnings,
        host_config={**host_config, **log_request(opts), **console_size(),
                     **({"ContainerIDFile": opts.cidfile} if opts.cidfile else {})},
        config=config,
        mounts=mount_request(opts),
        healthcheck=health_request(opts),
        endpoint=endpoint_request(opts),
    )


def endpoint_request(opts) -> dict | None:
    """--ip, --network-alias, --link-local-ip: the EndpointSettings of the container's network."""
    if not (opts.ip or opts.network_alias or opts.link_local_ip):
        return None
    from berth.engine.run_options import endpoint_settings  # lazy: only these flags

    return endpoint_settings(opts.ip, opts.network_alias, opts.link_local_ip)


def health_request(opts) -> dict | None:
    """Config.Healthcheck from the --health-* flags; None (nothing imported) without them."""
    if not any(opts.given(dest) for dest in HEALTH_FLAGS):
        return None
    from berth.cli.health import healthcheck_from  # lazy: only --health-* and --no-healthcheck

    return healthcheck_from(opts)


def console_size() -> dict:
    """HostConfig.ConsoleSize as docker's CLI sets it at create: its stdout's terminal size
    (rows, columns), none off a terminal (the record's default [0, 0])."""
    if not os.isatty(1):
        return {}
    from berth.engine.attach import terminal_size  # lazy: only from a terminal (run loads it then anyway)

    size = terminal_size(1)
    return {"ConsoleSize": list(size)} if size else {}


# run ergonomics (issue 14): the flags ergonomics_request turns into Config/HostConfig fields
ERGONOMICS_FLAGS = ("annotation", "attach", "disable_content_trust", "domainname", "gpus", "ip", "ip6", "isolation",
                    "link_local_ip", "mac_address", "network_alias", "platform", "pull", "runtime", "use_api_socket",
                    "volume_driver")


def ergonomics_request(engine, opts, image: str) -> tuple[dict, dict]:
    """(Config, HostConfig) fields of docker's run ergonomics flags, checked by the engine
    (berth.engine.run_options); nothing imported when none is given."""
    config, host = {}, {}
    if not any(opts.given(dest) for dest in ERGONOMICS_FLAGS):
        return config, host
    from berth.engine import run_options  # lazy: only these flags

    if opts.attach:
        streams = attach_streams(opts.attach)
        config.update(AttachStdin="stdin" in streams or opts.interactive, AttachStdout="stdout" in streams,
                      AttachStderr="stderr" in streams)
    if opts.mac_address:
        config["MacAddress"] = run_options.check_mac_address(opts.mac_address)
    if opts.domainname:
        config["Domainname"] = opts.domainname
    if opts.annotation:
        host["Annotations"] = dict(item.partition("=")[::2] for item in opts.annotation)
    run_options.check_pull(opts.pull)
    if not opts.disable_content_trust:
        run_options.content_trust()
    if opts.platform:
        run_options.check_platform(opts.platform, image)
    if opts.gpus is not None:
        run_options.check_gpus(opts.gpus)
    if opts.use_api_socket:
        run_options.use_api_socket()
    if opts.isolation is not None:
        host["Isolation"] = run_options.check_isolation(opts.isolation)
    if opts.volume_driver is not None:
        host["VolumeDriver"] = run_options.check_volume_driver(opts.volume_driver)
    if opts.runtime is not None and engine is not None:
        host["Runtime"] = run_options.check_runtime(opts.runtime, engine.settings)
    if opts.ip or opts.ip6 or opts.network_alias or opts.link_local_ip:
        run_options.check_endpoint(opts.ip, opts.ip6, opts.network_alias, opts.link_local_ip, opts.network or opts.net)
    return config, host


def attach_streams(values: list[str]) -> set[str]:
    """-a/--attach: stdin, stdout, stderr (any case)."""
    streams = {value.lower() for value in values}
    bad = streams - {"stdin", "stdout", "stderr"}
    if bad:
        value = next(v for v in values if v.lower() in bad)
        raise UsageError(f'invalid argument "{value}" for "-a, --attach" flag: valid streams are STDIN, STDOUT and '
                         "STDERR\nSee 'berth run --help'.")
    return streams


def isolation_request(opts, warnings: list[str]) -> dict:
    """HostConfig fields of docker's isolation flags (IPC, privileges, users, security)."""
    if opts.lxc_conf:
        from berth.engine.security import lxc_conf_error  # lazy: only --lxc-conf

        raise InvalidArgument(lxc_conf_error(opts.lxc_conf))
    host = {}
    if opts.ipc is not None:
        from berth.engine.create_checks import valid_ipc_mode  # lazy: only --ipc

        if not valid_ipc_mode(opts.ipc):
            raise InvalidArgument("--ipc: invalid IPC mode")
        host["IpcMode"] = opts.ipc
    if opts.shm_size is not None:
        from berth.units import ram_in_bytes  # lazy: not for attach, which loads this module

        try:
            size = ram_in_bytes(opts.shm_size)
        except ValueError:
            raise UsageError(f'invalid argument "{opts.shm_size}" for "--shm-size" flag: invalid size: '
                                  f"'{opts.shm_size}'") from None
        if size <= 0:  # docker's CLI refuses 0 too; its daemon (create_checks.check_shm_size) only less
            raise InvalidArgument("SHM size can not be less than 0")
        host["ShmSize"] = size
    host.update(namespace_request(opts))
    if opts.userns is not None:
        from berth.engine.create_checks import valid_userns_mode  # lazy: only --userns

        if not valid_userns_mode(opts.userns):
            raise InvalidArgument("--userns: invalid USER mode")
        host["UsernsMode"] = opts.userns
    if opts.sysctl:
        host["Sysctls"] = parse_sysctls(opts.sysctl)
    if opts.privileged:
        host["Privileged"] = True
    if opts.read_only:
        host["ReadonlyRootfs"] = True
    if opts.group_add:
        host["GroupAdd"] = list(opts.group_add)
    if opts.cap_add or opts.cap_drop:
        from berth.engine.security import normalize_caps  # lazy: only --cap-add/--cap-drop

        host["CapAdd"], host["CapDrop"] = normalize_caps(opts.cap_add, opts.cap_drop)
    if opts.security_opt:
        from berth.engine.security import lsm_warnings, parse_security_opts  # lazy: only --security-opt

        host.update(parse_security_opts(opts.security_opt))
        for line in lsm_warnings(host["SecurityOpt"]):
            print(line, file=sys.stderr)
    if any(opts.given(dest) for dest in RESOURCE_FLAGS):
        from berth.engine.resources import host_config_from  # lazy: only resource flags

        host.update(host_config_from(opts, warnings))
    return host


def log_request(opts) -> dict:
    """--log-driver and --log-opt as docker's CLI sends them (HostConfig.LogConfig): the engine
    fills in its defaults and checks them."""
    if opts.log_driver is None and not opts.log_opt:
        return {}
    config = {}
    for item in opts.log_opt:
        key, _, value = item.partition("=")
        config[key] = value
    from berth.engine.create_checks import check_log_request  # lazy: only --log-driver, --log-opt

    check_log_request(opts.log_driver or "", config)
    return {"LogConfig": {"Type": opts.log_driver or "", "Config": config}}


RESOURCE_FLAGS = ("memory", "memory_swap", "memory_reservation", "memory_swappiness", "oom_kill_disable", "cpu_shares",
                  "cpus", "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems", "pids_limit", "device",
                  "device_cgroup_rule", "ulimit", "blkio_weight", "blkio_weight_device", "device_read_bps",
                  "device_write_bps", "device_read_iops", "device_write_iops", "cpu_rt_period", "cpu_rt_runtime",
                  "kernel_memory", "oom_score_adj")  # = berth.engine.resources.FLAG_DESTS, without importing it


def namespace_request(opts) -> dict:
    """--pid, --uts, --cgroupns, --cgroup-parent and --storage-opt as docker's CLI checks them;
    the engine checks them against its containers and the host."""
    host = {}
    if (opts.pid, opts.uts, opts.cgroupns) != (None, None, None):
        from berth.engine import create_checks  # lazy: only --pid, --uts, --cgroupns

        for value, valid, field, message in (
                (opts.pid, create_checks.valid_pid_mode, "PidMode", "--pid: invalid PID mode"),
                (opts.uts, create_checks.valid_uts_mode, "UTSMode", "--uts: invalid UTS mode"),
                (opts.cgroupns, create_checks.valid_cgroupns_mode, "CgroupnsMode", "--cgroupns: invalid CGROUP mode")):
            if value is not None:
                if not valid(value):
                    raise InvalidArgument(message)
                host[field] = value
    if opts.cgroup_parent:
        host["CgroupParent"] = opts.cgroup_parent
    if opts.storage_opt:
        options = {}
        for item in opts.storage_opt:
            key, eq, value = item.partition("=")
            if not eq:
                raise InvalidArgument("invalid storage option")
            options[key] = value
        host["StorageOpt"] = options
    return host


def refused_windows_only(opts) -> bool:
    """docker's CLI refuses its Windows-only flags on a Linux engine (exit 1): says so if one
    is given."""
    for name in WINDOWS_ONLY:
        if opts.given(name.replace("-", "_")):
            print(f'"--{name}" is only supported on a Docker daemon running on windows, but the berth engine is '
                  "running on linux", file=sys.stderr)
            return True
    return False


def parse_sysctls(values: list[str]) -> dict:
    from berth.engine.create_checks import sysctl_allowed  # lazy: only --sysctl

    sysctls = {}
    for value in values:
        key, eq, setting = value.partition("=")
        if not eq or not sysctl_allowed(key):
            raise UsageError(f'invalid argument "{value}" for "--sysctl" flag: sysctl \'{value}\' is not '
                                  "allowed")
        sysctls[key] = setting
    return sysctls


def mount_request(opts):
    """-v, --mount, --tmpfs and --volumes-from as the docker CLI hands them over; None (and
    nothing imported) when none is given."""
    if not (opts.volume or opts.mount or opts.tmpfs or opts.volumes_from):
        return None
    from berth.engine.mounts import MountRequest  # lazy: only -v, --mount, --tmpfs

    return MountRequest.from_flags(opts.volume, opts.mount, opts.tmpfs, opts.volumes_from)


def network_request(opts) -> dict:
    """-p/-P/--expose/--link in docker's terms; parsed only when given (run stays lean)."""
    fields = {"publish_all": opts.publish_all}
    if opts.publish or opts.expose:
        from berth.engine.ports import parse_expose, parse_publish  # lazy: only -p, --expose

        exposed, bindings = parse_publish(opts.publish)
        fields["exposed_ports"] = {**parse_expose(opts.expose), **exposed}
        fields["port_bindings"] = bindings
    if opts.link:
        from berth.engine.ports import parse_links  # lazy: only --link

        fields["links"] = parse_links(opts.link)
    return fields


def parse_restart_policy(value: str) -> dict:
    """docker's --restart: no | always | unless-stopped | on-failure[:max-retries]."""
    if value == "no":
        return {"Name": "no", "MaximumRetryCount": 0}
    from berth.engine.create_checks import check_restart_policy  # lazy: only --restart

    name, _, count = value.partition(":")
    if value.count(":") > 1:
        raise InvalidArgument(f"invalid restart policy format: {value}")
    retries = 0
    if count:
        check_restart_policy({"Name": name})  # an unknown name first, as docker's CLI
        if name != "on-failure":
            raise InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'")
        try:
            retries = int(count)
        except ValueError:
            raise InvalidArgument(f'invalid restart policy format: maximum retry count must be an integer: '
                                  f'strconv.Atoi: parsing "{count}": invalid syntax') from None
    return check_restart_policy({"Name": name, "MaximumRetryCount": retries})


def create_container(engine, req: CreateRequest, opts) -> dict:
    """engine.create, with docker's CLI around it: --cidfile written (or refused when it
    exists), "Unable to find image" before the error of a missing image (but with --pull never)."""
    cidfile = None
    if opts.cidfile:
        from berth.cli.run_files import CidFile  # lazy: only --cidfile

        cidfile = CidFile(opts.cidfile)
    try:
        if opts.pull == "always":
            _pull(engine, req.image, opts)
        try:
            record = engine.create(req)
        except BaseException as err:
            from berth.engine.missing_image import NoSuchImage  # lazy: only a failed create

            if not isinstance(err, NoSuchImage) or opts.pull == "never":
                raise
            print(f"Unable to find image '{err.image}' locally", file=sys.stderr)  # docker's CLI, then it pulls
            _pull(engine, req.image, opts)
            record = engine.create(req)
    except BaseException:
        if cidfile is not None:
            cidfile.abandon()
        raise
    if cidfile is not None:
        cidfile.write(record["Id"])
    for warning in req.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    return record


def _pull(engine, image: str, opts) -> None:
    """run/create's pull, drawn on stderr as docker's CLI does (nothing with -q)."""
    from berth.cli.registry import pull_image  # lazy: only an image to pull

    pull_image(engine, image, sys.stderr, opts.quiet, opts.platform, tag_note=False)


def cmd_create(engine, argv: list[str]) -> int:
    opts, args = parse(CREATE, argv)
    if _help(CREATE, opts):
        return 0
    if refused_windows_only(opts):
        return 1
    record = create_container(engine, request_from(opts, args, engine), opts)
    print(record["Id"])
    return 0


def cmd_run(engine, argv: list[str]) -> int:
    opts, args = parse(RUN, argv)
    if _help(RUN, opts):
        return 0
    if refused_windows_only(opts):
        return 1
    req = request_from(opts, args, engine)
    if opts.detach and opts.attach:
        return refuse("conflicting options: cannot specify both --attach and --detach")
    if opts.tty and opts.interactive and not opts.detach and not os.isatty(0):
        return refuse("the input device is not a TTY")
    if opts.detach:
        from berth.engine.attach import PendingStart  # lazy: create and exec load this module

        pending = PendingStart(engine)  # before creating: see monitor.supervisor.DetachedStart
        try:
            record = create_container(engine, req, opts)
        except BaseException:
            pending.cancel()
            raise
        try:
            pending.start(record)
        except BerthError:
            _remove_if_auto(engine, record)
            raise
        print(record["Id"])
        return 0
    keys = detach_keys(opts)
    engine.warm_up()  # what the start needs, while we create
    record = create_container(engine, req, opts)
    config = record["Config"]
    code = run_attached(engine, record, opts.interactive, keys, opts.sig_proxy, warmed=True,
                        outputs=(config["AttachStdout"], config["AttachStderr"]))
    # Either way we are done: no interpreter teardown (freeing ~30 MB object by object, each
    # page shared with a supervisor we forked copied first); docker's CLI is gone as soon.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cmd_start(engine, argv: list[str]) -> int:
    opts, args = parse(START, argv)
    if _help(START, opts):
        return 0
    if opts.checkpoint or opts.checkpoint_dir:
        flag = "--checkpoint" if opts.checkpoint else "--checkpoint-dir"
        raise NotImplementedYet(f"{flag}: restoring a container from a checkpoint (CRIU) is not supported")
    if opts.attach or opts.interactive:
        if len(args) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        keys = detach_keys(opts)
        record = engine.get(args[0])
        engine.mark_stopped_by_hand(record["Id"], False)
        return run_attached(engine, record, opts.interactive and record["Config"]["OpenStdin"], keys)
    from berth.engine.attach import start_detached  # lazy: create and exec load this module

    failed = 0
    for ref in args:
        try:
            record = engine.get(ref)
            if not is_running(record):
                engine.mark_stopped_by_hand(record["Id"], False)
                start_detached(engine, record["Id"])
            print(ref)
        except BerthError as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            failed = 1
    if failed and len(args) > 1:
        print("Error: failed to start containers: " + ", ".join(args), file=sys.stderr)
    return failed


def run_attached(engine, record: dict, interactive: bool, keys: bytes = b"", sig_proxy: bool = True,
                 warmed: bool = False, outputs: tuple[bool, bool] = (True, True)) -> int:
    """Start the container (or attach to it, if it runs already) with our stdio attached:
    its output on ours (those of `outputs`, stdout and stderr: run -a), our stdin to it with
    `interactive`, our terminal in raw mode with a tty, our signals forwarded without; its
    exit code (0 if the user detached). Supervised by this process when nothing needs the
    container to outlive us (engine.attach.runs_here: no fork, as fast as it gets), else by
    a supervisor of its own that we attach to."""
    from berth.engine.attach import attach, runs_here, start_attached  # lazy: create and exec load this module

    running = is_running(record)
    if not running and all(outputs) and runs_here(record, interactive, sig_proxy):
        return _run_here(engine, record, interactive)
    attached = Attached(record["Config"]["Tty"], sig_proxy, keys)
    try:
        if running:  # docker's start -a of a running container attaches to it
            session = attach(engine, record["Id"], stdin=interactive, size=attached.size(), block=True)
        else:
            try:  # its supervisor, forked now (it has all we loaded), with us connected: we see every byte
                session = start_attached(engine, record, stdin=interactive, size=attached.size(), warmed=warmed)
            except BerthError:
                _remove_if_auto(engine, record)
                raise
        code = attached.stream(session, outputs)
    finally:
        attached.close()
    return 0 if code is None else code


def refuse(message: str) -> int:
    """A refusal docker's CLI makes before it asks the daemon anything: exit 1, not 125."""
    print(f"Error: {message}", file=sys.stderr)
    return 1


def _run_here(engine, record: dict, interactive: bool) -> int:
    from berth.engine.attach import run_here  # lazy: create and exec load this module

    hold_std_fds()
    forwarder = SignalForwarder()
    try:
        return run_here(engine, record, stdin=interactive, on_started=forwarder.target)
    except BerthError:
        _remove_if_auto(engine, record)
        raise
    finally:
        forwarder.restore()


def detach_keys(opts) -> bytes:
    """--detach-keys (docker's format), else the default ctrl-p,ctrl-q."""
    from berth.engine.attach import DEFAULT_DETACH_KEYS, parse_detach_keys  # lazy: create and exec load this module

    return parse_detach_keys(opts.detach_keys or DEFAULT_DETACH_KEYS)


def _remove_if_auto(engine, record: dict) -> None:
    from berth.engine.lifecycle import remove_if_auto  # lazy: only a failed start

    remove_if_auto(engine, record)


class SignalForwarder:
    """docker's sig-proxy for a process we supervise ourselves (an exec, run_here): signals
    sent to the CLI go to it. Installed before it starts; what arrives before its pid is
    known is delivered then."""

    def __init__(self):
        self.pid = None
        self.pending = []
        self.previous = {sig: signal.signal(sig, self._handle) for sig in FORWARDED_SIGNALS}

    def _handle(self, signum, _frame):
        if self.pid is None:
            self.pending.append(signum)
        else:
            self._send(signum)

    def _send(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def target(self, pid: int) -> None:
        self.pid = pid
        while self.pending:
            self._send(self.pending.pop(0))

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
