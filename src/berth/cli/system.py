"""`berth version` and `berth info`, laid out like docker's."""

import sys

from berth import __version__
from berth.cli.flags import STRING, Command, Flag, help_text, parse
from berth.engine.system import info, version

VERSION = Command("version", "berth version [OPTIONS]", "Show the berth version information",
                  [Flag("format", "f", STRING, None, "Format output using a custom template")], max_args=0)
INFO = Command("info", "berth info [OPTIONS]", "Display system-wide information",
               [Flag("format", "f", STRING, None, "Format output using a custom template")], max_args=0)


def cmd_version(engine, argv) -> int:
    opts, _ = parse(VERSION, argv)
    if opts.help:
        sys.stdout.write(help_text(VERSION))
        return 0

    data = version()
    if opts.format:
        from berth.cli.output import render_one  # lazy: only --format

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


def cmd_info(engine, argv) -> int:
    from berth.units import bytes_size  # lazy: only info

    opts, _ = parse(INFO, argv)
    if opts.help:
        sys.stdout.write(help_text(INFO))
        return 0

    d = info(engine)
    if opts.format:
        from berth.cli.output import render_one  # lazy: only --format

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
        f" Runtimes: {' '.join(sorted(d['Runtimes']))}\n"
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
