"""`berth version` and `berth info`, laid out like docker's."""

import os
import platform
import sys

from berth import API_VERSION, __version__
from berth.cli.flags import STRING, Command, Flag, help_text, parse

VERSION = Command("version", "berth version [OPTIONS]", "Show the berth version information",
                  [Flag("format", "f", STRING, None, "Format output using a custom template")], max_args=0)
INFO = Command("info", "berth info [OPTIONS]", "Display system-wide information",
               [Flag("format", "f", STRING, None, "Format output using a custom template")], max_args=0)


def _arch() -> str:
    from berth.image.importer import platform as image_platform

    return image_platform()[1]


def version_data() -> dict:
    py = platform.python_version()
    engine = {"Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": "1.24", "PythonVersion": py,
              "Os": "linux", "Arch": _arch(), "KernelVersion": os.uname().release, "Experimental": False}
    return {
        "Client": {"Platform": {"Name": "berth"}, "Version": __version__, "ApiVersion": API_VERSION,
                   "PythonVersion": py, "Os": "linux", "Arch": _arch(), "Context": "default"},
        "Server": {"Platform": {"Name": "berth Engine"}, "Version": __version__, "ApiVersion": API_VERSION,
                   "MinAPIVersion": "1.24", "Os": "linux", "Arch": _arch(), "KernelVersion": os.uname().release,
                   "Components": [{"Name": "Engine", "Version": __version__, "Details": engine},
                                  {"Name": "berth-runtime", "Version": __version__, "Details": {}}]},
    }


def cmd_version(engine, argv) -> int:
    opts, _ = parse(VERSION, argv)
    if opts.help:
        sys.stdout.write(help_text(VERSION))
        return 0
    data = version_data()
    if opts.format:
        from berth.cli.output import render_one

        sys.stdout.write(render_one(opts.format, data) + "\n")
        return 0
    c, s = data["Client"], data["Server"]
    sys.stdout.write(
        "Client:\n"
        f" Version:           {c['Version']}\n"
        f" API version:       {c['ApiVersion']}\n"
        f" Python version:    {c['PythonVersion']}\n"
        f" OS/Arch:           {c['Os']}/{c['Arch']}\n"
        f" Context:           {c['Context']}\n"
        "\n"
        f"Server: {s['Platform']['Name']}\n"
        " Engine:\n"
        f"  Version:          {s['Version']}\n"
        f"  API version:      {s['ApiVersion']} (minimum version {s['MinAPIVersion']})\n"
        f"  Python version:   {c['PythonVersion']}\n"
        f"  OS/Arch:          {s['Os']}/{s['Arch']}\n"
        f"  Kernel version:   {s['KernelVersion']}\n"
        "  Experimental:     false\n"
        " berth-runtime:\n"
        f"  Version:          {__version__}\n"
    )
    return 0


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def info_data(engine) -> dict:
    from berth.runtime.cgroups import CGROUP_ROOT

    records = engine.containers()
    running = sum(1 for r in records if r["State"]["Running"])
    paused = sum(1 for r in records if r["State"]["Paused"])
    cgroup_version = "2" if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")) else "1"
    return {
        "ID": "", "Containers": len(records), "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": len(records) - running - paused, "Images": len(engine.images.images()),
        "Driver": "overlay", "DriverStatus": [["Backing Filesystem", _backing_fs(engine.paths.root)]],
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": cgroup_version,
        "KernelVersion": os.uname().release, "OperatingSystem": _os_name(), "OSType": "linux",
        "Architecture": os.uname().machine, "NCPU": os.cpu_count(), "MemTotal": _mem_total(),
        "Name": os.uname().nodename, "ServerVersion": __version__, "DefaultRuntime": "berth",
        "Runtimes": {"berth": {"path": "berth-runtime"}}, "DockerRootDir": engine.paths.root,
        "RunRootDir": engine.paths.run_root, "SecurityOptions": [], "Debug": False, "Experimental": False,
    }


def _backing_fs(path: str) -> str:
    best, fstype = "", "unknown"
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            mount_point = fields[1]
            inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, fstype = mount_point, fields[2]
    return {"ext4": "extfs", "ext3": "extfs", "ext2": "extfs"}.get(fstype, fstype)


def cmd_info(engine, argv) -> int:
    from berth.units import bytes_size

    opts, _ = parse(INFO, argv)
    if opts.help:
        sys.stdout.write(help_text(INFO))
        return 0
    d = info_data(engine)
    if opts.format:
        from berth.cli.output import render_one

        sys.stdout.write(render_one(opts.format, d) + "\n")
        return 0
    sys.stdout.write(
        "Client:\n"
        f" Version:    {__version__}\n"
        " Context:    default\n"
        " Debug Mode: false\n"
        "\n"
        "Server:\n"
        f" Containers: {d['Containers']}\n"
        f"  Running: {d['ContainersRunning']}\n"
        f"  Paused: {d['ContainersPaused']}\n"
        f"  Stopped: {d['ContainersStopped']}\n"
        f" Images: {d['Images']}\n"
        f" Server Version: {d['ServerVersion']}\n"
        f" Storage Driver: {d['Driver']}\n"
        f"  Backing Filesystem: {d['DriverStatus'][0][1]}\n"
        f" Logging Driver: {d['LoggingDriver']}\n"
        f" Cgroup Driver: {d['CgroupDriver']}\n"
        f" Cgroup Version: {d['CgroupVersion']}\n"
        " Runtimes: berth\n"
        f" Default Runtime: {d['DefaultRuntime']}\n"
        f" Kernel Version: {d['KernelVersion']}\n"
        f" Operating System: {d['OperatingSystem']}\n"
        f" OSType: {d['OSType']}\n"
        f" Architecture: {d['Architecture']}\n"
        f" CPUs: {d['NCPU']}\n"
        f" Total Memory: {bytes_size(d['MemTotal'])}\n"
        f" Name: {d['Name']}\n"
        f" Berth Root Dir: {d['DockerRootDir']}\n"
        f" Berth Run Root Dir: {d['RunRootDir']}\n"
        " Debug Mode: false\n"
        " Experimental: false\n"
    )
    return 0
