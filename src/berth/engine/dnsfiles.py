"""The container's /etc/hosts, /etc/hostname and /etc/resolv.conf, written into its directory."""

HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")  # docker's fallback, written as file content only


def hosts(extra: list[tuple[str, str]] = (), own: tuple[str, str] | None = None) -> str:
    """docker's order: localhost lines, extra (--add-host, links), then the container's own."""
    text = HOSTS_HEADER
    for name, address in extra:
        text += f"{address}\t{name}\n"
    if own:
        text += f"{own[0]}\t{own[1]}\n"
    return text


def resolv_conf(host_text: str, dns: list[str] = (), search: list[str] = (), options: list[str] = (),
                keep_loopback: bool = False, internal_resolver: bool = False) -> str:
    """Derive the container's resolv.conf from the host's like docker: loopback nameservers
    cannot work from another network namespace, so they are dropped (kept with the host's).
    With `internal_resolver` (a user-defined network), docker's: `nameserver 127.0.0.11` and
    `options ndots:0`, the servers it would have named kept as the resolver's upstream in an
    `# ExtServers: [...]` comment."""
    nameservers, searches, opts, others = [], [], [], []
    for line in host_text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            if keep_loopback or not _is_loopback(fields[1]):
                nameservers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = fields[1:]
        elif fields[0] == "options":
            opts.extend(fields[1:])
        else:
            others.append(line)
    if internal_resolver:
        upstream = [f"host({ns})" if from_host else ns for ns, from_host in external_servers(host_text, dns)]
        nameservers = ["127.0.0.11"]
        opts = list(options) or opts
        if not any(o.startswith("ndots:") for o in opts):
            opts = ["ndots:0", *opts]
    else:
        nameservers = list(dns) or nameservers or list(DEFAULT_NAMESERVERS)
        opts = list(options) or opts
    searches = list(search) or searches
    out = "".join(f"nameserver {ns}\n" for ns in nameservers)
    if searches and searches != ["."]:
        out += "search " + " ".join(searches) + "\n"
    if opts:
        out += "options " + " ".join(opts) + "\n"
    if internal_resolver:
        out += f"\n# ExtServers: [{' '.join(upstream)}]\n"
    return out


def external_servers(host_text: str, dns: list[str] = ()) -> list[tuple[str, bool]]:
    """docker's ExtServers of a container on a user network, where its embedded resolver sends
    the names that are not the networks': [(address, asked from the host's namespace)]. The
    --dns (or daemon.json) servers, asked from the container's namespace; else the host's
    nameservers, those on the host's loopback asked from the host's (docker's HostLoopback);
    else docker's public fallback."""
    if dns:
        return [(server, False) for server in dns]
    return [(ns, _is_loopback(ns)) for ns in host_servers(host_text)] or \
        [(server, False) for server in DEFAULT_NAMESERVERS]


def host_servers(host_text: str) -> list[str]:
    """The nameservers a resolv.conf names, in order."""
    return [f[1] for f in (line.split() for line in host_text.splitlines()) if len(f) > 1 and f[0] == "nameserver"]


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "0:0:0:0:0:0:0:1")
