"""`berth stats [OPTIONS] [CONTAINER...]`: each container's CPU %, memory, network and block
I/O and pids (berth.engine.stats samples them), in docker's columns, refreshed in place every
second (or once with --no-stream)."""

import sys

from berth.cli.contexts import Row
from berth.cli.flags import BOOL, STRING, Command, Flag, parse_or_help
from berth.cli.output import list_format, render_table_text
from berth.engine.stats import stats
from berth.errors import BerthError
from berth.units import bytes_size, human_size

STATS = Command("stats", "berth stats [OPTIONS] [CONTAINER...]",
                "Display a live stream of container(s) resource usage statistics",
                [Flag("all", "a", BOOL, False, "Show all containers (default shows just running)"),
                 Flag("format", None, STRING, None, "Format output using a custom template"),
                 Flag("no-stream", None, BOOL, False, "Disable streaming stats and only pull the first result"),
                 Flag("no-trunc", None, BOOL, False, "Do not truncate output")])

DEFAULT_FORMAT = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}"
                  "\t{{.PIDs}}")
HEADER = {"Container": "CONTAINER", "Name": "NAME", "ID": "CONTAINER ID", "CPUPerc": "CPU %",
          "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
          "PIDs": "PIDS"}


def cmd_stats(engine, argv: list[str]) -> int:
    opts, args = parse_or_help(STATS, argv)
    if opts.help:
        return 0
    named = []
    for ref in args:  # docker checks the names it is given before printing anything
        try:
            named.append(engine.get(ref)["Id"])
        except BerthError as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            return 1
    given = dict(zip(named, args, strict=True))  # docker's .Container: the name or ID the user gave
    fmt = list_format(opts.format, DEFAULT_FORMAT)
    terminal = not opts.no_stream and sys.stdout.isatty()
    cleared = False
    rounds = stats(engine, named, opts.all, stream=not opts.no_stream)
    for figures in rounds:
        if opts.no_stream and not figures:
            return 0  # docker prints nothing, not even the header
        text = render_table_text(fmt, [_row(f, given.get(f.id, f.id[:12]), not opts.no_trunc) for f in figures], HEADER)
        if terminal:  # redraw in place, as docker does: home, each line cleared to its end, rest cleared
            text = "\033[H" + "".join(line + "\033[K\n" for line in text.split("\n")[:-1]) + "\033[J"
            if not cleared:
                text, cleared = "\033[2J" + text, True
        _write(text)
    if terminal and named:  # every container we were asked about is gone
        _write("\033[H\033[J")
    return 0


def _row(figures, given: str, trunc: bool) -> Row:
    row = {"BlockIO": "0B / 0B", "CPUPerc": "0.00%", "Container": given,
           "ID": figures.id[:12] if trunc else figures.id, "MemPerc": "0.00%", "MemUsage": "0B / 0B",
           "Name": figures.name or "--", "NetIO": "0B / 0B", "PIDs": "0"}
    if not figures.running:
        return Row("*container.statsContext", row)
    memory, limit = figures.memory, figures.memory_limit
    row.update(
        BlockIO=f"{human_size(figures.block_read)} / {human_size(figures.block_write)}",
        CPUPerc=f"{figures.cpu_percent:.2f}%",
        MemPerc=f"{memory / limit * 100.0 if limit else 0.0:.2f}%",
        MemUsage=f"{bytes_size(memory)} / {bytes_size(limit)}",
        NetIO=f"{human_size(figures.net_rx)} / {human_size(figures.net_tx)}",
        PIDs=str(figures.pids),
    )
    return Row("*container.statsContext", row)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
