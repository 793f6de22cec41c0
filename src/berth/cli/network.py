"""`berth network ls` and `network inspect` for the built-in networks (bridge, host, none)."""

import sys

from berth.cli.contexts import Row
from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, help_text, parse
from berth.cli.output import print_found, render_rows
from berth.engine.network_info import inspect_network, list_networks

LS = Command("network ls", "berth network ls [OPTIONS]", "List networks",
             [Flag("quiet", "q", BOOL, False, "Only display network IDs"),
              Flag("no-trunc", None, BOOL, False, "Do not truncate the output"),
              Flag("filter", "f", LIST, (), "Provide filter values"),
              Flag("format", None, STRING, None, "Format output using a custom template")], max_args=0)
INSPECT = Command("network inspect", "berth network inspect [OPTIONS] NETWORK [NETWORK...]",
                  "Display detailed information on one or more networks",
                  [Flag("format", "f", STRING, None, "Format output using a custom template"),
                   Flag("verbose", "v", BOOL, False, "Verbose output for diagnostics")], min_args=1)
HEADER = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE"}


def cmd_network_ls(engine, argv) -> int:
    opts, _ = parse(LS, argv)
    if opts.help:
        sys.stdout.write(help_text(LS))
        return 0
    # docker's networkContext; CreatedAt is Go's time String() of the networks' (zero) Created
    rows = [Row("*network.networkContext", {
        "ID": n.id if opts.no_trunc else n.id[:12], "Name": n.name, "Driver": n.driver, "Scope": n.scope,
        "IPv4": "true", "IPv6": "false", "Internal": "false", "Labels": "",
        "CreatedAt": "0001-01-01 00:00:00 +0000 UTC"})
        for n in list_networks(engine, opts.filter)]
    if opts.quiet:
        sys.stdout.write("".join(row.ID + "\n" for row in rows))
        return 0
    render_rows(opts.format, "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", rows, HEADER)
    return 0


def cmd_network_inspect(engine, argv) -> int:
    opts, args = parse(INSPECT, argv)
    if opts.help:
        sys.stdout.write(help_text(INSPECT))
        return 0
    found, failed = [], 0
    for ref in args:
        network = inspect_network(engine, ref)
        if network is None:
            print(f"Error response from daemon: network {ref} not found", file=sys.stderr)
            failed = 1
            continue
        found.append(network)

    print_found(found, opts.format, ["network"] * len(found))
    return failed
