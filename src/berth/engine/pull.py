"""Registry use cases: pull, push, login, logout.

pull and push are generators of docker's JSON progress messages, the objects the Engine API's
POST /images/create and /images/{name}/push stream ({"status", "id", "progressDetail",
"progress"}); the CLI renders the same objects. The transfer runs in a worker thread (layers
download 3 at a time inside it) while the generator hands its messages on as they come; an
error is raised from the generator after the messages before it."""

import os
import queue
import threading

from berth.errors import BerthError, InvalidArgument, NotFound
from berth.units import human_size

BAR_WIDTH = 50
_DONE = object()


def _parse(ref: str):
    from berth.image import reference  # lazy: already loaded by a create that failed

    try:
        return reference.parse(ref)
    except ValueError as err:
        raise InvalidArgument(str(err)) from None


def _access(engine):
    """The engine's registry settings (daemon.json's insecure-registries, registry-mirrors;
    certs.d beside daemon.json) and docker's credentials store."""
    from berth.engine.settings import DEFAULT_CONFIG_FILE  # lazy: engine.settings loads the network checks
    from berth.image import credentials, distribution, registry  # lazy: urllib3, only talking to a registry

    settings = engine.settings
    certs = os.path.join(os.path.dirname(settings.config_file or DEFAULT_CONFIG_FILE), "certs.d")
    return distribution.Access(registry.Settings(settings.insecure_registries, settings.registry_mirrors, certs),
                               credentials.get)


def _platform(value: str | None) -> tuple[tuple, bool]:
    from berth.engine import run_options  # lazy: only a pull

    if not value:
        os_name, _, arch = run_options.host_platform().partition("/")
        return (os_name, arch, ""), False
    os_name, arch = run_options.parse_platform(value)
    parts = value.lower().split("/")
    return (os_name, arch or run_options.host_platform().partition("/")[2],
            parts[2] if len(parts) > 2 else ""), True


def progress_text(current: int, total: int) -> str:
    """docker's JSONProgress.String() as the daemon sends it in "progress"."""
    if total <= 0:
        return f"{human_size(current, 4):>8}"
    filled = min(int(current / total * 100) // 2, BAR_WIDTH)
    return f"[{'=' * filled}>{' ' * (BAR_WIDTH - filled)}] {human_size(current, 4):>8}/{human_size(total, 4)}"


def message(ident: str | None, status: str, current: int | None = None, total: int | None = None) -> dict:
    """One of docker's progress messages."""
    out = {"status": status}
    if current is not None:
        out["progressDetail"] = {"current": current, "total": total}
        out["progress"] = progress_text(current, total or 0)
    elif ident and status in ("Pulling fs layer", "Waiting", "Preparing", "Verifying Checksum",
                              "Download complete", "Pull complete", "Pushed", "Layer already exists",
                              "Already exists"):
        out["progressDetail"] = {}
    if ident:
        out["id"] = ident
    return out


def _streamed(work):
    """Run `work(report)` in a thread; yield the messages it reports, then its return value
    as the generator's own return value."""
    messages: queue.Queue = queue.Queue()
    outcome = {}

    def report(ident, status, current=None, total=None):
        messages.put(message(ident, status, current, total))

    def runner():
        try:
            outcome["value"] = work(report)
        except BaseException as err:  # handed to the generator's caller
            outcome["error"] = err
        messages.put(_DONE)

    thread = threading.Thread(target=runner, name="berth-transfer", daemon=True)
    thread.start()
    while True:
        item = messages.get()
        if item is _DONE:
            break
        yield item
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def pull(engine, ref: str, platform: str | None = None, all_tags: bool = False):
    """`pull`: yields docker's progress messages, ending with its Digest and Status lines."""
    parsed = _parse(ref)
    if all_tags:
        if parsed.digest or (parsed.tag and ref.rpartition("/")[2].count(":")):
            raise InvalidArgument("tag can't be used with --all-tags/-a")
        updated = False
        for tag in list_tags(engine, parsed):
            updated |= yield from _pull_one(engine, _parse(f"{parsed.name()}:{tag}"), platform, status=False)
        yield _status(updated, parsed.familiar_name())
        return
    yield from _pull_one(engine, parsed, platform)


def _status(updated: bool, name: str) -> dict:
    return message(None, f"Status: Downloaded newer image for {name}" if updated
                   else f"Status: Image is up to date for {name}")


def _pull_one(engine, parsed, platform: str | None, status: bool = True):
    """One reference's pull; returns whether it brought a newer image."""
    from berth.image import distribution  # lazy: only pull

    spelled, given = _platform(platform)
    target = distribution.Target(parsed.domain, parsed.path, parsed.tag, parsed.digest, spelled, given)
    name = str(parsed) if not (parsed.tag and parsed.digest) else f"{parsed.name()}@{parsed.digest}"
    store = engine.images
    access = _access(engine)
    result = yield from _streamed(lambda report: distribution.pull(store, access, target, name, report))
    yield message(None, f"Digest: {result.digest}")
    if result.updated:
        store.event("pull", parsed.familiar(), parsed.familiar(), {})  # docker: the reference is the actor
    if status:
        yield _status(result.updated, parsed.familiar())
    return result.updated


def list_tags(engine, parsed) -> list[str]:
    """The repository's tags (GET /v2/<name>/tags/list), for `pull --all-tags`."""
    from berth import fastjson as json  # lazy: only pull --all-tags
    from berth.image import registry  # lazy: urllib3, only talking to a registry

    access = _access(engine)
    places = [e for e in registry.endpoints(access.settings, parsed.domain) if not e.mirror]
    client = registry.connect(places, parsed.path, "pull", access.credentials)
    response = client.request("GET", f"{parsed.path}/tags/list")
    client.check(response, f"tags of {parsed.name()}")
    try:
        tags = json.loads(response.data).get("tags") or []
    except (ValueError, AttributeError):
        raise BerthError(f"invalid tag list from {parsed.domain}") from None
    return [tag for tag in tags if isinstance(tag, str)]


def push(engine, ref: str):
    """`push NAME[:TAG]`: yields docker's progress messages, ending with "<tag>: digest: ... size: N"."""
    from berth.image import distribution  # lazy: only push

    parsed = _parse(ref)
    if parsed.digest:
        raise InvalidArgument("cannot push a digest reference")
    image = engine.images.lookup(str(parsed))
    if image is None or str(parsed) not in image.names:
        raise NotFound(f"An image does not exist locally with the tag: {parsed.familiar_name()}")
    target = distribution.Target(parsed.domain, parsed.path, parsed.tag, "", ("", "", ""), False)
    store = engine.images
    access = _access(engine)
    yield message(None, f"The push refers to repository [{parsed.name()}]")
    digest, size = yield from _streamed(lambda report: distribution.push(store, access, target, image, report))
    store.event("push", parsed.familiar(), parsed.familiar(), {})
    yield message(None, f"{parsed.tag}: digest: {digest} size: {size}")


def server_key(server: str | None) -> tuple[str, str]:
    """(registry domain, credentials key) of what `login`/`logout` were given: nothing means
    Docker Hub; a URL's scheme and path are dropped, as docker does."""
    from berth.image import credentials  # lazy: only login and logout

    if not server:
        return credentials.DOCKER_HUB, credentials.DOCKER_HUB_AUTH_KEY
    domain = server.partition("://")[2] if "://" in server else server
    domain = domain.split("/", 1)[0]
    key = credentials.auth_key(domain)
    return (credentials.DOCKER_HUB if key == credentials.DOCKER_HUB_AUTH_KEY else domain), key


def login(engine, server: str | None, username: str, password: str) -> str | None:
    """Check the credentials against the registry (GET /v2/ with its challenge answered), then
    keep them; returns the config file's path when they were stored unencrypted."""
    from berth.image import credentials, registry  # lazy: urllib3, only talking to a registry

    if not username or not password:
        raise InvalidArgument("Username and password required" if not username else "Password Required")
    domain, key = server_key(server)
    access = _access(engine)
    places = registry.endpoints(registry.Settings(access.settings.insecure, [], access.settings.certs_dir), domain)
    client = registry.connect(places, "", "", lambda key: (username, password))
    response = client.request("GET", "")
    if response.status == 401:
        raise registry.Unauthorized(f"login attempt to {client.endpoint.base}/v2/ failed with status: "
                                    "401 Unauthorized")
    client.check(response, "login")
    return credentials.store(key, username, password)


def logout(engine, server: str | None) -> tuple[str, bool]:
    """Forget the credentials of `server`: (what docker names it, whether there were any)."""
    from berth.image import credentials  # lazy: only login and logout

    domain, key = server_key(server)
    return key, credentials.erase(key)


def full_name(ref: str) -> str:
    """The reference as docker's CLI prints it after a pull: docker.io/library/busybox:latest."""
    parsed = _parse(ref)
    if parsed.tag and parsed.digest:
        return f"{parsed.name()}@{parsed.digest}"
    return str(parsed)


def tags_of(engine, ref: str) -> list[str]:
    """`push --all-tags`: every local tag of the repository `ref` names."""
    parsed = _parse(ref)
    if parsed.digest or ":" in ref.rpartition("/")[2]:
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    prefix = parsed.name() + ":"
    tags = sorted({name for image in engine.images.images() for name in image.names if name.startswith(prefix)})
    if not tags:
        raise NotFound(f"An image does not exist locally with the tag: {parsed.familiar_name()}")
    return tags
