"""`berth network create|ls|inspect|rm|prune|connect|disconnect` with docker's flags and output."""

import sys

from berth.cli.contexts import Row
from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, help_text, parse
from berth.cli.output import print_found, render_rows
from berth.engine.network_info import inspect_network, list_networks
from berth.errors import BerthError, InvalidArgument

CREATE = Command("network create", "berth network create [OPTIONS] NETWORK", "Create a network",
                 [Flag("driver", "d", STRING, "bridge", "Driver to manage the Network"),
                  Flag("subnet", None, LIST, (), "Subnet in CIDR format that represents a network segment"),
                  Flag("gateway", None, LIST, (), "IPv4 or IPv6 Gateway for the master subnet"),
                  Flag("ip-range", None, LIST, (), "Allocate container ip from a sub-range"),
                  Flag("internal", None, BOOL, False, "Restrict external access to the network"),
                  Flag("attachable", None, BOOL, False, "Enable manual container attachment"),
                  Flag("opt", "o", LIST, (), "Set driver specific options", metavar="map"),
                  Flag("label", None, LIST, (), "Set metadata on a network"),
                  Flag("ipam-driver", None, STRING, "default", "IP Address Management Driver"),
                  Flag("ipam-opt", None, LIST, (), "Set IPAM driver specific options", metavar="map"),
                  Flag("ipv6", None, BOOL, False, "Enable or disable IPv6 networking"),
                  Flag("ipv4", None, BOOL, True, "Enable or disable IPv4 address assignment"),
                  Flag("aux-address", None, LIST, (), "Auxiliary IPv4 or IPv6 addresses used by Network driver",
                       metavar="map"),
                  Flag("scope", None, STRING, "", "Control the network's scope"),
                  Flag("config-only", None, BOOL, False, "Create a configuration only network"),
                  Flag("config-from", None, STRING, "", "The network from which to copy the configuration"),
                  Flag("ingress", None, BOOL, False, "Create swarm routing-mesh network")],
                 min_args=1, max_args=1)
RM = Command("network rm", "berth network rm NETWORK [NETWORK...]", "Remove one or more networks",
             [Flag("force", "f", BOOL, False, "Do not error if the network does not exist")], min_args=1)
PRUNE = Command("network prune", "berth network prune [OPTIONS]", "Remove all unused networks",
                [Flag("filter", None, LIST, (), 'Provide filter values (e.g. "until=<timestamp>")'),
                 Flag("force", "f", BOOL, False, "Do not prompt for confirmation")], max_args=0)
CONNECT = Command("network connect", "berth network connect [OPTIONS] NETWORK CONTAINER",
                  "Connect a container to a network",
                  [Flag("alias", None, LIST, (), "Add network-scoped alias for the container"),
                   Flag("ip", None, STRING, None, "IPv4 address (e.g., 172.30.100.104)"),
                   Flag("ip6", None, STRING, None, "IPv6 address (e.g., 2001:db8::33)"),
                   Flag("link", None, LIST, (), "Add link to another container"),
                   Flag("link-local-ip", None, LIST, (), "Add a link-local address for the container"),
                   Flag("driver-opt", None, LIST, (), "driver options for the network")],
                  min_args=2, max_args=2)
DISCONNECT = Command("network disconnect", "berth network disconnect [OPTIONS] NETWORK CONTAINER",
                     "Disconnect a container from a network",
                     [Flag("force", "f", BOOL, False, "Force the container to disconnect from a network")],
                     min_args=2, max_args=2)
PRUNE_WARNING = "WARNING! This will remove all custom networks not used by at least one container."

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
        "IPv4": "true", "IPv6": "false", "Internal": str(n.internal).lower(),
        "Labels": ",".join(f"{k}={v}" for k, v in n.labels.items()), "CreatedAt": _created_at(n.created)})
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


def _created_at(created: str) -> str:
    """Go's time String() of a network's Created, as docker's `network ls --format` shows it."""
    if created.startswith("0001-"):
        return "0001-01-01 00:00:00 +0000 UTC"
    from berth.units import go_time_string, parse_rfc3339_ns  # lazy: only user-defined networks

    return go_time_string(parse_rfc3339_ns(created) / 1e9)


def _map(values: list[str], flag: str) -> dict:
    found = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: invalid key value pair format')
        found[key] = item
    return found


def cmd_network_create(engine, argv) -> int:
    from berth.engine.usernets import NetworkRequest, create  # lazy: only create

    opts, args = parse(CREATE, argv)
    if opts.help:
        sys.stdout.write(help_text(CREATE))
        return 0
    if opts.aux_address or opts.config_only or opts.config_from or opts.ingress or opts.scope not in ("", "local") \
            or not opts.ipv4:
        from berth.errors import NotImplementedYet  # lazy: only refused flags

        raise NotImplementedYet("--aux-address, --config-only, --config-from, --ingress, --ipv4=false and --scope "
                                "other than local are not supported by berth's bridge networks")
    labels = {}
    for value in opts.label:
        key, _, item = value.partition("=")
        labels[key] = item
    req = NetworkRequest(args[0], driver=opts.driver, subnets=opts.subnet, gateways=opts.gateway,
                         ip_ranges=opts.ip_range, internal=opts.internal, attachable=opts.attachable,
                         options=_map(opts.opt, "-o, --opt"), labels=labels, ipam_driver=opts.ipam_driver,
                         ipam_options=_map(opts.ipam_opt, "--ipam-opt") or None, ipv6=opts.ipv6)
    print(create(engine, req)["Id"])
    return 0


def cmd_network_rm(engine, argv) -> int:
    from berth.engine.usernets import remove  # lazy: only rm
    from berth.errors import NotFound  # lazy: only rm

    opts, args = parse(RM, argv)
    if opts.help:
        sys.stdout.write(help_text(RM))
        return 0
    failed = 0
    for ref in args:
        try:
            remove(engine, ref)
            print(ref)
        except NotFound as err:
            if not opts.force:
                print(f"Error response from daemon: {err}", file=sys.stderr)
                failed = 1
        except BerthError as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            failed = 1
    return failed


def cmd_network_prune(engine, argv) -> int:
    from berth.engine.usernets import prune  # lazy: only prune

    opts, _ = parse(PRUNE, argv)
    if opts.help:
        sys.stdout.write(help_text(PRUNE))
        return 0
    if not opts.force:
        from berth.cli.prune import _confirm  # lazy: only prune asks

        if not _confirm(PRUNE_WARNING):
            return 0
    removed = prune(engine, opts.filter)
    if removed:
        sys.stdout.write("Deleted Networks:\n" + "".join(name + "\n" for name in removed) + "\n")
    return 0


def cmd_network_connect(engine, argv) -> int:
    from berth.engine.usernets import connect  # lazy: only connect
    from berth.errors import NotImplementedYet  # lazy: only refused flags

    opts, args = parse(CONNECT, argv)
    if opts.help:
        sys.stdout.write(help_text(CONNECT))
        return 0
    if opts.link or opts.link_local_ip or opts.driver_opt or opts.ip6:
        raise NotImplementedYet("network connect --link, --link-local-ip, --driver-opt and --ip6 are not supported yet")
    if opts.ip:
        from berth.engine.run_options import check_endpoint  # lazy: only --ip

        check_endpoint(opts.ip, None, [], [], args[0])
    connect(engine, args[0], args[1], opts.alias, opts.ip)
    return 0


def cmd_network_disconnect(engine, argv) -> int:
    from berth.engine.usernets import disconnect  # lazy: only disconnect

    opts, args = parse(DISCONNECT, argv)
    if opts.help:
        sys.stdout.write(help_text(DISCONNECT))
        return 0
    disconnect(engine, args[0], args[1], opts.force)
    return 0
