"""berth's firewall: one nftables table per engine root, in families `ip` (published ports by
kernel DNAT, masquerade) and `bridge` (inter-container traffic when icc is false), plus the
one exception berth makes in a table it does not own (iptables-nft's FORWARD drop policy).

nft and iptables run through os.posix_spawn, not subprocess: `import subprocess` alone costs
~10 ms, and publish() is on the `berth run -p` path."""

import _signal
import _socket
import fcntl
import os
import select

from berth import fastjson
from berth.errors import BerthError, Conflict, InvalidArgument

DEFAULT_ROOT = "/var/lib/berth"
PROTOCOLS = ("tcp", "udp", "sctp")
_ALL_ADDRESSES = ("", "0.0.0.0")


def table_name(root: str) -> str:
    """"berth" for the default root, else "berth_" + 8 hex digits of sha256(root)."""
    root = os.path.abspath(root)
    if root == DEFAULT_ROOT:
        return "berth"
    try:
        from _sha256 import sha256  # the builtin: no OpenSSL load on the `run` path
    except ImportError:
        from hashlib import sha256  # lazy: Python >= 3.12 has no _sha256
    return "berth_" + sha256(root.encode()).hexdigest()[:8]


def user_table_name(root: str) -> str:
    """The table of the root's user-defined networks (network.usernet)."""
    return table_name(root) + "_net"


def isolate_from_user_networks(root: str, bridge: str) -> None:
    """The default bridge was (re)made, maybe under another name: the user networks' table,
    when there is one, isolates it from them as well."""
    table = user_table_name(root)
    status, _, _ = nft("list", "set", "ip", table, "bridges", check=False)
    if status == 0:
        nft(script=f'add element ip {table} bridges {{ "{bridge}" }}\n')


# -- running a command -----------------------------------------------------------------------

def find_program(name: str, *preferred: str) -> str | None:
    """The first of `preferred` (absolute paths) that is executable, else `name` on PATH."""
    for path in preferred:
        if os.access(path, os.X_OK):
            return path
    for directory in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        path = os.path.join(directory or ".", name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None


def _above_stdio(fd: int) -> int:
    # A pipe end numbered 0-2 (the caller runs with a closed stdio fd) would be clobbered by
    # the dup2s below: move it out of the way.
    if fd > 2:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return moved


def run_command(argv: list[str], stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    """Run argv (argv[0] a path) with `stdin`; return (exit status, stdout, stderr)."""
    in_r, in_w = (_above_stdio(fd) for fd in os.pipe())
    out_r, out_w = (_above_stdio(fd) for fd in os.pipe())
    err_r, err_w = (_above_stdio(fd) for fd in os.pipe())
    try:
        pid = os.posix_spawn(argv[0], argv, os.environ, setsigdef=(_signal.SIGPIPE,),  # Python ignores it
                             file_actions=[(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
                                           (os.POSIX_SPAWN_DUP2, err_w, 2)])
    except OSError:
        for fd in (in_w, out_r, err_r):
            os.close(fd)
        raise
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    output = {out_r: [], err_r: []}
    poller = select.poll()
    for fd in output:
        poller.register(fd, select.POLLIN)
    pending = memoryview(stdin)
    if pending:
        os.set_blocking(in_w, False)
        poller.register(in_w, select.POLLOUT)
    else:
        os.close(in_w)
    open_fds = len(output) + bool(pending)
    while open_fds:
        for fd, _ in poller.poll():
            if fd == in_w:
                try:
                    pending = pending[os.write(in_w, pending[:65536]):]
                except BrokenPipeError:  # the program stopped reading: its status will say why
                    pending = pending[:0]
                if not pending:
                    poller.unregister(in_w)
                    os.close(in_w)
                    open_fds -= 1
                continue
            data = os.read(fd, 65536)
            if data:
                output[fd].append(data)
            else:
                poller.unregister(fd)
                os.close(fd)
                open_fds -= 1
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(output[out_r]), b"".join(output[err_r])


def _first_error(stderr: bytes) -> str:
    """nft's first error line, without the script position (`/dev/stdin:3:1-20: `)."""
    for line in stderr.decode(errors="replace").splitlines():
        if line.strip():
            if line.startswith("/dev/stdin:") and ": " in line:
                line = line.split(": ", 1)[1]
            return line.strip()
    return "no error message"


_NFT = None


def nft(*args: str, script: str = "", check: bool = True) -> tuple[int, str, str]:
    """Run nft with `args` (or `-f -` reading `script`); with check, a failure raises BerthError."""
    global _NFT
    if _NFT is None:
        _NFT = find_program("nft", "/usr/sbin/nft")
        if _NFT is None:
            raise BerthError("nft not found: install nftables (berth's port publishing needs it)")
    argv = [_NFT, *args] if args else [_NFT, "-f", "-"]
    status, out, err = run_command(argv, script.encode())
    if status != 0 and check:
        raise BerthError(f"nft: {_first_error(err)}")
    return status, out.decode(), err.decode()


# -- validation (every value below is written into an nft script) ----------------------------

def _ipv4(address: str) -> str:
    try:
        _socket.inet_pton(_socket.AF_INET, address)
    except (OSError, TypeError):
        raise InvalidArgument(f"invalid IPv4 address: {address!r}") from None
    return address


def _port(port) -> int:
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidArgument(f"invalid port: {port!r}")
    return port


def _protocol(proto: str) -> str:
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol: {proto!r}")
    return proto


# -- the firewall --------------------------------------------------------------------------

_INPUT_HOOK = "type filter hook input priority filter; policy accept;"

class Firewall:
    """berth's rules for one bridge: `table ip T` and `table bridge T`, nothing else in nft."""

    __slots__ = ("table", "bridge", "subnet", "icc")

    def __init__(self, table: str, bridge: str, subnet: str, icc: bool = True):
        if not table or not all(c.isascii() and (c.isalnum() or c == "_") for c in table):
            raise InvalidArgument(f"invalid nftables table name: {table!r}")
        if not bridge or len(bridge) > 15 or any(c in bridge for c in ' "\\/\t\n') or not bridge.isprintable():
            raise InvalidArgument(f"invalid bridge name: {bridge!r}")
        address, _, prefix = subnet.partition("/")
        if not prefix.isdigit() or not 0 <= int(prefix) <= 32:
            raise InvalidArgument(f"invalid IPv4 subnet: {subnet!r}")
        _ipv4(address)
        self.table, self.bridge, self.subnet, self.icc = table, bridge, subnet, icc

    def exists(self) -> bool:
        status, _, err = nft("-t", "list", "table", "ip", self.table, check=False)
        if status == 0:
            return True
        if "No such file or directory" in err:
            return False
        raise BerthError(f"nft: {_first_error(err.encode())}")

    def setup(self) -> None:
        """(Re)create both tables in one transaction: published ports and links start empty."""
        nft(script=self._recreate() + self.ruleset())
        self._sync_forward_exception(install=True)

    def teardown(self) -> None:
        nft(script=self._recreate())
        self._sync_forward_exception(install=False)

    def publish(self, mappings) -> None:
        """Add DNAT entries: (proto, host_ip or "" for all, host_port, container_ip, container_port).
        One transaction; a host port already mapped elsewhere raises Conflict, docker's wording."""
        mappings = list(mappings)
        if not mappings:
            return
        status, _, err = nft(script="".join(self._element("add", m) for m in mappings), check=False)
        if status != 0:
            self._raise_publish_error(mappings, err)

    def unpublish(self, mappings) -> None:
        """Delete those entries; absent ones are fine. nft 1.0.6 has no `destroy`, so each is
        added (a no-op when present) and deleted in the same transaction."""
        mappings = list(mappings)
        while mappings:
            script = "".join(self._element("add", m) + self._element("delete", m) for m in mappings)
            status, _, err = nft(script=script, check=False)
            if status == 0:
                return
            index = _failed_line(err)
            if "File exists" not in err or index is None or index // 2 >= len(mappings):
                raise BerthError(f"nft: {_first_error(err.encode())}")
            del mappings[index // 2]  # that host port maps to another container: not ours to remove

    def allow_link(self, src_ip: str, dst_ip: str, ports) -> None:
        """Let src_ip open connections to dst_ip on `ports` [(proto, port)] when icc is false."""
        script = "".join(self._link("add", src_ip, dst_ip, p) for p in ports)
        if script:
            nft(script=script)

    def disallow_link(self, src_ip: str, dst_ip: str, ports) -> None:
        script = "".join(self._link("add", src_ip, dst_ip, p) + self._link("delete", src_ip, dst_ip, p)
                         for p in ports)
        if script:
            nft(script=script)

    # -- the ruleset --------------------------------------------------------------------
    def _recreate(self) -> str:
        # `add` then `delete` removes a table that may or may not exist, without an error.
        return "".join(f"add table {family} {self.table}\ndelete table {family} {self.table}\n"
                       for family in ("ip", "bridge"))

    def ruleset(self) -> str:
        t, br, net = self.table, self.bridge, self.subnet
        # icc=false, at layer 2 so that it holds with or without br_netfilter. Frames are ours
        # by their addresses, not by bridge name: `meta ibrname` needs nft_meta_bridge, which
        # not every kernel has (this VM's has not). Links are stateless, like docker's --link
        # rules: the bridge family has conntrack only with nf_conntrack_bridge (not here either).
        forward = "" if self.icc else f"""  chain forward {{
    type filter hook forward priority filter; policy accept;
    ip saddr . ip daddr . meta l4proto . th dport @links accept
    ip daddr . ip saddr . meta l4proto . th sport @links accept
    ip saddr {net} drop
    ip daddr {net} drop
  }}
"""
        return f"""table ip {t} {{
  map publish_any {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
  map publish_addr {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local jump publish
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    fib daddr type local jump publish
  }}
  chain publish {{
    dnat ip to ip daddr . meta l4proto . th dport map @publish_addr
    dnat ip to meta l4proto . th dport map @publish_any
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {net} oifname != "{br}" masquerade
    oifname "{br}" ip saddr 127.0.0.0/8 masquerade
    oifname "{br}" ct status dnat ip saddr {net} masquerade
  }}
{self.loopback_guard()}}}
table bridge {t} {{
  set links {{ type ipv4_addr . ipv4_addr . inet_proto . inet_service; }}
{forward}}}
"""

    def loopback_guard(self) -> str:
        """The `input` chain of `table ip T`: kube-proxy's fix for CVE-2020-8558. route_localnet=1
        on the bridge (for -p 127.0.0.1:..., by kernel NAT) also lets a container send to the
        host's 127.0.0.0/8 through the gateway's MAC and reach services bound to loopback only.
        So on our bridge, a packet for 127.0.0.0/8 passes only if berth's DNAT made it (replies
        of a port published on 127.0.0.1 included) or it answers a connection the host opened
        from a loopback address (masqueraded in postrouting); loopback sources are spoofed."""
        rules = "".join(f"    {rule}\n" for rule in self._loopback_rules())
        return f"  chain input {{\n    {_INPUT_HOOK}\n{rules}  }}\n"

    def add_loopback_guard(self) -> None:
        """Put the input chain into a table an older berth made, in place: its published ports stay."""
        t = self.table
        nft(script=f"add table ip {t}\nadd chain ip {t} input {{ {_INPUT_HOOK} }}\nflush chain ip {t} input\n"
            + "".join(f"add rule ip {t} input {rule}\n" for rule in self._loopback_rules()))

    def _loopback_rules(self) -> list[str]:
        to_loopback = f'iifname "{self.bridge}" ip daddr 127.0.0.0/8'
        return [f'iifname "{self.bridge}" ip saddr 127.0.0.0/8 drop', f"{to_loopback} ct status dnat accept",
                f"{to_loopback} ct state established accept", f"{to_loopback} drop"]

    def _element(self, verb: str, mapping) -> str:
        proto, host_ip, host_port, container_ip, container_port = mapping
        value = f"{_ipv4(container_ip)} . {_port(container_port)}"
        key = f"{_protocol(proto)} . {_port(host_port)}"
        if host_ip in _ALL_ADDRESSES:
            return f"{verb} element ip {self.table} publish_any {{ {key} : {value} }}\n"
        return f"{verb} element ip {self.table} publish_addr {{ {_ipv4(host_ip)} . {key} : {value} }}\n"

    def _link(self, verb: str, src_ip: str, dst_ip: str, port) -> str:
        proto, number = port
        return (f"{verb} element bridge {self.table} links "
                f"{{ {_ipv4(src_ip)} . {_ipv4(dst_ip)} . {_protocol(proto)} . {_port(number)} }}\n")

    def _raise_publish_error(self, mappings, err: str):
        index = _failed_line(err)
        if "File exists" in err and index is not None and index < len(mappings):
            _, host_ip, host_port, _, _ = mappings[index]
            raise Conflict(f"Bind for {host_ip or '0.0.0.0'}:{host_port} failed: port is already allocated")
        raise BerthError(f"nft: {_first_error(err.encode())}")

    # -- the exception in iptables-nft's table --------------------------------------------
    def _sync_forward_exception(self, install: bool) -> None:
        sync_forward_exception(self.bridge, f"berth:{self.table}", install)


def sync_forward_exception(bridge: str, comment: str, install: bool) -> None:
    """Docker sets `ip filter` FORWARD to policy drop, and an accept in our table cannot
    override another table's drop: with br_netfilter even traffic bridged between two of
    our containers passes that chain. So we accept `bridge`'s traffic in docker's
    DOCKER-USER chain (else at the top of FORWARD), through iptables as that table is
    iptables-nft's, marked with `comment` so that we remove exactly ours."""
    chains = _filter_chains()
    if not chains:
        return  # no `ip filter` table: nothing of ours can be in it
    forward = chains.get("FORWARD", {})
    target = None
    if install and forward.get("hook") == "forward" and forward.get("policy") == "drop":
        target = "DOCKER-USER" if "DOCKER-USER" in chains else "FORWARD"
    wanted = [[target, "-i", bridge, "-m", "comment", "--comment", comment, "-j", "ACCEPT"],
              [target, "-o", bridge, "-m", "comment", "--comment", comment, "-j", "ACCEPT"]]
    ours = [rule for rule in _iptables_rules(strict=target is not None) if _comment(rule) == comment]
    if target and sorted(ours) == sorted(wanted):
        return
    for rule in ours:
        _iptables("-D", *rule)
    if target:
        for position, rule in enumerate(wanted, 1):
            _iptables("-I", rule[0], str(position), *rule[1:])


def _failed_line(err: str) -> int | None:
    """The 0-based script line nft's first error points at (`/dev/stdin:LINE:COLS: Error: ...`)."""
    parts = err.split(":", 2)
    if len(parts) == 3 and parts[0] == "/dev/stdin" and parts[1].isdigit():
        return int(parts[1]) - 1
    return None


def _filter_chains() -> dict:
    """The chains of table `ip filter` by name ({} when there is no such table)."""
    _, out, _ = nft("-j", "list", "chains", "ip")
    chains = {}
    for item in fastjson.loads(out).get("nftables", []):
        chain = item.get("chain")
        if chain and chain.get("table") == "filter":
            chains[chain["name"]] = chain
    return chains


_IPTABLES = None


def _iptables(*args: str) -> str:
    global _IPTABLES
    if _IPTABLES is None:
        # iptables-nft by name: the legacy backend would edit tables nft cannot see.
        _IPTABLES = find_program("iptables-nft", "/usr/sbin/iptables-nft") or find_program("iptables")
        if _IPTABLES is None:
            raise BerthError("iptables not found: needed to accept berth's bridge in the FORWARD chain")
    status, out, err = run_command([_IPTABLES, "-w", "-t", "filter", *args])
    if status != 0:
        raise BerthError(f"iptables {' '.join(args)}: {_first_error(err)}")
    return out.decode()


def _iptables_rules(strict: bool) -> list[list[str]]:
    """Every rule of iptables' filter table as [chain, arg, ...] (`iptables -S` without `-A`).
    Unless strict, a table iptables cannot read (say, one written with nft) holds none of ours."""
    try:
        listing = _iptables("-S")
    except BerthError:
        if strict:
            raise
        return []
    rules = []
    for line in listing.splitlines():
        if line.startswith("-A "):
            # iptables quotes comments; ours hold no spaces, so dropping quotes keeps them whole
            rules.append(line[3:].replace('"', "").split())
    return rules


def _comment(rule: list[str]) -> str | None:
    for option, value in zip(rule, rule[1:], strict=False):
        if option == "--comment":
            return value
    return None
