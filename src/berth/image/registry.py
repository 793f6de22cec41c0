"""HTTP to a registry (OCI distribution spec / Docker Registry HTTP API v2): where a registry is
(docker.io -> registry-1.docker.io, mirrors, https or plain http), its TLS (the system CA store
plus certs.d/<host>/*.crt, client.cert/client.key), and its authentication (the
`WWW-Authenticate` challenge: Bearer tokens fetched from the realm, anonymous or with
credentials, or Basic).

HTTP goes through urllib3: a thread-safe connection pool (the 3 concurrent layer downloads
share kept-alive connections), streaming bodies, and no asyncio; proxies come from the
environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) as docker's Go client takes them. Imported only
by pull, push and login: never on `run`'s path when the image is present."""

import base64
import os
import socket
import ssl
import time

import urllib3

from berth import fastjson as json
from berth.errors import BerthError, InvalidArgument, NotFound
from berth.image.credentials import DOCKER_HUB, auth_key

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # insecure registries are the user's choice

DOCKER_HUB_API = "registry-1.docker.io"
MAX_JSON = 4 << 20  # a manifest, index or token response larger than this is refused
MAX_REDIRECTS = 10
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0


class RegistryError(BerthError):
    """The registry said no, or could not be reached: docker's wording where it has one."""


class Unauthorized(RegistryError):
    pass


class _NotARegistry(RegistryError):
    """Something answered GET /v2/, but not as a registry does."""


class Endpoint:
    """One place to talk to for a registry: base URL (scheme://host[:port]) and its pool."""

    __slots__ = ("domain", "base", "pool", "mirror")

    def __init__(self, domain: str, base: str, pool, mirror: bool = False):
        self.domain = domain
        self.base = base
        self.pool = pool
        self.mirror = mirror


class Settings:
    """What the engine settings say about registries: insecure ones (host[:port] or CIDR),
    mirrors of Docker Hub, and the certs.d directory."""

    __slots__ = ("insecure", "mirrors", "certs_dir")

    def __init__(self, insecure: list[str] = (), mirrors: list[str] = (), certs_dir: str = "/etc/berth/certs.d"):
        self.insecure = list(insecure)
        self.mirrors = list(mirrors)
        self.certs_dir = certs_dir

    def is_insecure(self, domain: str) -> bool:
        """dockerd's rule: a listed host[:port], or a host whose address lies in a listed CIDR or
        in 127.0.0.0/8 (loopback registries are insecure by default)."""
        if domain in self.insecure:
            return True
        import ipaddress  # lazy: only resolving an endpoint

        host = _host_of(domain)
        networks = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
        for item in self.insecure:
            if "/" in item:
                try:
                    networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    continue
        try:
            addresses = {ipaddress.ip_address(host)}
        except ValueError:
            if host != "localhost" and not any("/" in item for item in self.insecure):
                return False
            try:
                addresses = {ipaddress.ip_address(info[4][0].split("%")[0])
                             for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
            except (OSError, ValueError):
                return False
        return any(address in network for address in addresses for network in networks)


def _host_of(domain: str) -> str:
    if domain.startswith("["):
        return domain[1:domain.index("]")]
    return domain.rpartition(":")[0] if ":" in domain else domain


def _tls_context(settings: Settings, domain: str, verify: bool) -> ssl.SSLContext:
    """The system CA store plus certs.d/<domain>/*.crt; client.cert + client.key pairs as client
    certificates (docker's certs.d layout)."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    directory = os.path.join(settings.certs_dir, domain)
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        names = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            if name.endswith(".crt"):
                context.load_verify_locations(cafile=path)
            elif name.endswith(".cert"):
                key = path[:-len(".cert")] + ".key"
                if not os.path.exists(key):
                    raise InvalidArgument(f"missing key {os.path.basename(key)} for client certificate {name}. "
                                          "CA certificates must use the extension .crt")
                context.load_cert_chain(path, key)
        except ssl.SSLError as err:
            raise InvalidArgument(f"invalid certificate {path}: {err.reason or err}") from None
    return context


def _pool(settings: Settings, domain: str, scheme: str, verify: bool):
    """A connection pool for `domain`, through the environment's proxy unless NO_PROXY says not."""
    import urllib.request  # lazy: the environment's proxy rules, only talking to a registry

    options = {"maxsize": 4, "block": False, "retries": False,
               "timeout": urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT)}
    if scheme == "https":
        options["ssl_context"] = _tls_context(settings, domain, verify)
        if not verify:
            options["assert_hostname"] = False
    proxy = urllib.request.getproxies_environment().get(scheme)
    if proxy and not urllib.request.proxy_bypass_environment(_host_of(domain)):
        return urllib3.ProxyManager(proxy, **options)
    return urllib3.PoolManager(**options)


def endpoints(settings: Settings, domain: str) -> list[Endpoint]:
    """Where to pull `domain`'s images from, in order: Docker Hub's mirrors first, then the
    registry itself over https, and for an insecure registry plain http after that."""
    found = []
    if domain == DOCKER_HUB:
        for mirror in settings.mirrors:
            scheme, _, host = mirror.rstrip("/").partition("://")
            found.append(Endpoint(host, f"{scheme}://{host}",
                                  _pool(settings, host, scheme, not settings.is_insecure(host)), mirror=True))
        api = DOCKER_HUB_API
    else:
        api = domain
    insecure = settings.is_insecure(domain)
    # An insecure registry's https is not verified (docker's InsecureSkipVerify), unless certs.d
    # names a CA for it: then berth verifies, so that the CA given is not silently ignored.
    verify = not insecure or os.path.isdir(os.path.join(settings.certs_dir, domain))
    found.append(Endpoint(domain, f"https://{api}", _pool(settings, domain, "https", verify)))
    if insecure:
        found.append(Endpoint(domain, f"http://{api}", _pool(settings, domain, "http", False)))
    return found


def connect(places: list[Endpoint], repository: str, actions: str, credentials) -> "Client":
    """A client for the first of `places` that answers as a registry does (GET /v2/: 200, or
    401 answered), as docker pings it: an insecure registry's failed https attempt falls back to
    plain http. When the fallback finds no registry, the https failure is the error (a TLS-only
    registry refusing plain http says less than the handshake that failed)."""
    first = None
    for i, endpoint in enumerate(places):
        client = Client(endpoint, repository, actions, credentials(auth_key(endpoint.domain)))
        try:
            response = client.request("GET", "")
            response.release_conn()
            if response.status not in (200, 401):
                raise _NotARegistry(f'Get "{endpoint.base}/v2/": received unexpected HTTP status: '
                                    f"{response.status} {response.reason}")
            return client
        except RegistryError as err:
            first = first or err
            if i + 1 < len(places) and falls_back(err):
                continue
            raise (first if isinstance(err, _NotARegistry) else err) from None
    raise RegistryError("no registry endpoint")


def parse_challenge(header: str) -> tuple[str, dict]:
    """`Bearer realm="...",service="...",scope="..."` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " ,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            i += 1
            value = ""
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                value += rest[i]
                i += 1
            i += 1
        else:
            end = rest.find(",", i)
            end = n if end < 0 else end
            value = rest[i:end].strip()
            i = end
        params[key] = value
    return scheme.lower(), params


class Client:
    """A registry client for one repository: requests with the authentication the registry's
    challenge asks for, retried once with fresh credentials on a 401."""

    def __init__(self, endpoint: Endpoint, repository: str, actions: str, credentials=None):
        self.endpoint = endpoint
        self.repository = repository
        self.actions = actions  # "pull" or "pull,push"
        self.credentials = credentials  # (username, password) or None
        self.extra_scopes: list[str] = []
        self._authorization = None
        self._challenged = False

    def scope(self) -> list[str]:
        own = [f"repository:{self.repository}:{self.actions}"] if self.repository else []
        return own + self.extra_scopes

    def url(self, path: str) -> str:
        return f"{self.endpoint.base}/v2/{path}"

    def request(self, method: str, path: str, headers: dict | None = None, body=None, stream: bool = False,
                absolute: bool = False):
        """One request (a path under /v2/, or an absolute URL), authenticated; the response is
        read whole unless `stream`. A connection failure is a RegistryError."""
        url = path if absolute else self.url(path)
        for attempt in (1, 2):
            sent = dict(headers or {})
            if self._authorization:
                sent["Authorization"] = self._authorization
            response = self._send(method, url, sent, body, stream)
            if response.status != 401 or attempt == 2 or self._challenged:
                return response
            challenge = response.headers.get("WWW-Authenticate", "")
            response.release_conn()
            self.authenticate(challenge)
            if hasattr(body, "seek"):
                body.seek(0)
        return response

    def _send(self, method: str, url: str, headers: dict, body, stream: bool):
        """Redirects followed (a blob may live elsewhere; urllib3 drops Authorization when the
        host changes), at most MAX_REDIRECTS; nothing else retried here."""
        retries = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=MAX_REDIRECTS)
        try:
            return self.endpoint.pool.request(method, url, headers=headers, body=body, retries=retries,
                                              preload_content=not stream)
        except urllib3.exceptions.MaxRetryError as err:
            if isinstance(err.reason, urllib3.exceptions.ResponseError) or err.reason is None:
                raise RegistryError(f"{method} {_safe(url)}: stopped after {MAX_REDIRECTS} redirects") from None
            raise connection_error(method, url, err.reason) from None
        except urllib3.exceptions.HTTPError as err:
            raise connection_error(method, url, err) from None

    def authenticate(self, challenge: str) -> None:
        """Answer a 401's challenge: a Bearer token from its realm for our scope (with the
        credentials when we have them), or Basic credentials."""
        self._challenged = True
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.credentials:
                raise Unauthorized("no basic auth credentials")
            self._authorization = "Basic " + _basic(*self.credentials)
        elif scheme == "bearer" and params.get("realm"):
            self._authorization = "Bearer " + self.token(params)
        else:
            raise Unauthorized(f"unsupported authentication challenge from {self.endpoint.domain}: "
                               f"{challenge.split(' ', 1)[0] or 'none'}")

    def token(self, params: dict) -> str:
        realm = params["realm"]
        if not realm.startswith(("https://", "http://")):
            raise Unauthorized(f"invalid token realm {realm!r}")
        fields = [("service", params["service"])] if params.get("service") else []
        fields += [("scope", scope) for scope in self.scope()]
        headers = {}
        if self.credentials:
            headers["Authorization"] = "Basic " + _basic(*self.credentials)
            fields.append(("account", self.credentials[0]))
        from urllib.parse import urlencode  # lazy: only a token request

        url = realm + ("&" if "?" in realm else "?") + urlencode(fields)
        response = self._send("GET", url, headers, None, False)
        if response.status in (401, 403):
            raise Unauthorized("unauthorized: incorrect username or password" if self.credentials
                               else "unauthorized: authentication required")
        if response.status != 200 or len(response.data) > MAX_JSON:
            raise Unauthorized(f"token request to {_safe(realm)} failed: HTTP {response.status}")
        try:
            body = json.loads(response.data)
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise Unauthorized(f"token request to {_safe(realm)} returned no token")
        return token

    def check(self, response, what: str) -> None:
        """Turn an error status into docker's message: `<what>: <code>: <message>`."""
        if response.status < 400:
            return
        errors = _registry_errors(response)
        if response.status == 401:
            raise Unauthorized(errors or "unauthorized: authentication required")
        if response.status == 404:
            raise NotFound(f"{what}: {errors}" if errors else f"{what}: not found")
        raise RegistryError(f"{what}: {errors}" if errors
                            else f"{what}: received unexpected HTTP status: {response.status} {response.reason}")


def _registry_errors(response) -> str:
    """The spec's {"errors": [{"code", "message"}]} as docker prints it: "code: message"."""
    try:
        data = response.data if response.data is not None else b""
        body = json.loads(data[:MAX_JSON]) if data else {}
    except (ValueError, urllib3.exceptions.HTTPError):
        return ""
    out = []
    for item in (body.get("errors") if isinstance(body, dict) else None) or []:
        if isinstance(item, dict):
            code = str(item.get("code", "")).lower().replace("_", " ")
            out.append(f"{code}: {item.get('message', '')}")
    return ", ".join(out)


def connection_error(method: str, url: str, err) -> RegistryError:
    """A failed connection in words close to docker's Go errors (`Get "url": reason`), without
    any credential."""
    text = str(err)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        reason = "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    elif isinstance(err, urllib3.exceptions.SSLError):
        detail = text.rpartition("] ")[2].split(" (_ssl.c")[0].rstrip(")'\"")
        reason = f"tls: {detail}" if "] " in text else "tls: handshake failed"
    elif "Connection refused" in text:
        reason = "connect: connection refused"
    elif "timed out" in text.lower():
        reason = "i/o timeout"
    elif "Name or service not known" in text or "Temporary failure in name resolution" in text:
        reason = "no such host"
    else:
        reason = text.rpartition(": ")[2].rstrip(")'\"") or type(err).__name__
    return RegistryError(f'{method.capitalize()} "{_safe(url)}": {reason}')


def _safe(url: str) -> str:
    """`url` without its query (a token request carries the account name there) or userinfo."""
    scheme, _, rest = url.partition("://")
    rest = rest.split("?", 1)[0]
    if "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]
    return f"{scheme}://{rest}"


def _basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def falls_back(err: BaseException) -> bool:
    """Whether an insecure registry's failed https attempt moves on to plain http, as docker's
    endpoint loop does on a connection error: yes unless the registry answered (a refusal) or
    proved to speak TLS with a certificate berth cannot verify (certs.d named a CA for it)."""
    return not isinstance(err, Unauthorized) and "x509" not in str(err)


def backoff(attempt: int) -> None:
    time.sleep(min(0.25 * (2 ** attempt), 4.0))
