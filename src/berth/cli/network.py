"""`berth network ls` and `network inspect` for the built-in networks (bridge, host, none)."""

import sys

from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, help_text, parse

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


def _networks(engine) -> dict:
    """name -> ID of the networks this engine has (no bridge with `bridge: none`)."""
    from berth.engine.networks import BUILTIN, network_ids

    ids = network_ids(engine.paths.root)
    return {name: ids[name] for name in BUILTIN if name != "bridge" or engine.settings.bridged}


def network_json(engine, name: str, network_id: str) -> dict:
    from berth.engine.networks import DRIVERS

    containers = {}
    for record in engine.containers():
        if record["HostConfig"].get("NetworkMode") == name and record["State"]["Running"]:
            endpoint = (record["NetworkSettings"].get("Networks") or {}).get(name) or {}
            address = endpoint.get("IPAddress")
            containers[record["Id"]] = {
                "Name": record["Name"].lstrip("/"), "EndpointID": endpoint.get("EndpointID", ""),
                "MacAddress": endpoint.get("MacAddress", ""),
                "IPv4Address": f"{address}/{endpoint['IPPrefixLen']}" if address else "", "IPv6Address": ""}
    ipam, options = None, {}
    if name == "bridge":
        from berth.network.bridge import ensure

        settings = engine.settings
        bridge = ensure(engine.paths.root, settings)  # docker's bridge exists from the daemon's start
        if bridge is not None:
            ipam = [{"Subnet": bridge.subnet, "Gateway": bridge.gateway,
                     **({"IPRange": bridge.fixed_cidr} if bridge.fixed_cidr else {})}]
        options = {"com.docker.network.bridge.default_bridge": "true",
                   "com.docker.network.bridge.enable_icc": str(settings.icc).lower(),
                   "com.docker.network.bridge.enable_ip_masquerade": "true",
                   "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                   "com.docker.network.bridge.name": settings.bridge_name,
                   "com.docker.network.driver.mtu": str(settings.mtu)}
    return {"Name": name, "Id": network_id, "Created": "0001-01-01T00:00:00Z", "Scope": "local",
            "Driver": DRIVERS[name], "EnableIPv4": True, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": ipam},
            "Internal": False, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": containers, "Options": options, "Labels": {}}


def cmd_network_ls(engine, argv) -> int:
    from berth.cli.output import render_rows
    from berth.engine.networks import DRIVERS

    opts, _ = parse(LS, argv)
    if opts.help:
        sys.stdout.write(help_text(LS))
        return 0
    rows = [{"ID": nid if opts.no_trunc else nid[:12], "Name": name, "Driver": DRIVERS[name], "Scope": "local",
             "IPv6": "false", "Internal": "false", "Labels": "", "CreatedAt": ""}
            for name, nid in sorted(_networks(engine).items())]
    if opts.quiet:
        sys.stdout.write("".join(row["ID"] + "\n" for row in rows))
        return 0
    render_rows(opts.format, "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", rows, HEADER)
    return 0


def find_network(engine, ref: str) -> dict | None:
    """A network by name, ID or ID prefix, as `network inspect` shows it."""
    match = [(n, i) for n, i in _networks(engine).items() if ref in (n, i) or (ref and i.startswith(ref))]
    return network_json(engine, *match[0]) if match else None


def cmd_network_inspect(engine, argv) -> int:
    opts, args = parse(INSPECT, argv)
    if opts.help:
        sys.stdout.write(help_text(INSPECT))
        return 0
    found, failed = [], 0
    for ref in args:
        network = find_network(engine, ref)
        if network is None:
            print(f"Error response from daemon: network {ref} not found", file=sys.stderr)
            failed = 1
            continue
        found.append(network)
    from berth.cli.output import print_found

    print_found(found, opts.format)
    return failed
