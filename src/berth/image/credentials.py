"""Registry credentials where docker keeps them: $DOCKER_CONFIG/config.json (default
~/.docker/config.json), `auths` with base64 "user:password", or a credential helper
(`credsStore` for every registry, `credHelpers` per registry: docker-credential-<name>
get/store/erase speaking JSON on stdin/stdout). The docker CLI reads what berth writes and
berth reads what it writes. The file is written 0600, atomically, keeping its other keys."""

import base64
import os
import subprocess

from berth import fastjson as json
from berth.errors import BerthError, InvalidArgument
from berth.fs import write_bytes

DOCKER_HUB = "docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"  # the key docker's config.json uses for Hub


def auth_key(domain: str) -> str:
    """The key of `domain`'s credentials in docker's config.json."""
    return DOCKER_HUB_AUTH_KEY if domain in (DOCKER_HUB, "index.docker.io", "registry-1.docker.io") else domain


def config_path() -> str:
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


def _read_config() -> dict:
    path = config_path()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise BerthError(f"loading config file {path}: {err.strerror.lower()}") from None
    if not data.strip():
        return {}
    try:
        return json.loads_object(data)
    except ValueError as err:
        raise InvalidArgument(f"loading config file {path}: {err}") from None


def _write_config(config: dict) -> None:
    path = config_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    write_bytes(path, json.dumps(config, indent="\t").encode(), mode=0o600)


def _helper(config: dict, key: str) -> str | None:
    helpers = config.get("credHelpers") or {}
    return helpers.get(key) or config.get("credsStore") or None


def _run_helper(helper: str, action: str, payload: bytes) -> bytes:
    program = f"docker-credential-{helper}"
    try:
        result = subprocess.run([program, action], input=payload, capture_output=True, timeout=60)
    except FileNotFoundError:
        raise BerthError(f'error getting credentials - err: exec: "{program}": executable file not found in '
                         "$PATH, out: ``") from None
    if result.returncode != 0:
        out = result.stdout.decode(errors="replace").strip()
        if action == "get" and "credentials not found" in out:
            return b""
        raise BerthError(f"error {'getting' if action == 'get' else 'storing'} credentials - err: exit status "
                         f"{result.returncode}, out: `{out}`")
    return result.stdout


def get(key: str) -> tuple[str, str] | None:
    """(username, password) for the registry `key` (see auth_key), or None."""
    config = _read_config()
    helper = _helper(config, key)
    if helper:
        out = _run_helper(helper, "get", key.encode())
        if not out.strip():
            return None
        try:
            found = json.loads(out)
            return found["Username"], found["Secret"]
        except (ValueError, KeyError, TypeError):
            raise BerthError(f"error getting credentials - err: invalid answer from docker-credential-{helper}") \
                from None
    entry = (config.get("auths") or {}).get(key) or (config.get("auths") or {}).get("https://" + key)
    if not isinstance(entry, dict):
        return None
    if entry.get("auth"):
        try:
            user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except ValueError:  # bad base64 (binascii.Error) or not UTF-8
            raise InvalidArgument(f"invalid auth configuration file {config_path()}") from None
        if not sep:
            raise InvalidArgument("invalid auth configuration file")
        return user, password
    if entry.get("username"):
        return entry["username"], entry.get("password", "")
    return None


def store(key: str, username: str, password: str) -> str | None:
    """Keep the credentials; returns the config file's path when they went into it
    unencrypted (docker warns then), None when a helper stored them."""
    config = _read_config()
    helper = _helper(config, key)
    if helper:
        _run_helper(helper, "store", json.dumps({"ServerURL": key, "Username": username,
                                                 "Secret": password}).encode())
        config.setdefault("auths", {})[key] = {}
        _write_config(config)
        return None
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    config.setdefault("auths", {})[key] = {"auth": auth}
    _write_config(config)
    return config_path()


def erase(key: str) -> bool:
    """Forget the credentials of `key`; False if there were none."""
    config = _read_config()
    auths = config.get("auths") or {}
    helper = _helper(config, key)
    found = key in auths
    if helper:
        try:
            _run_helper(helper, "erase", key.encode())
            found = True
        except BerthError:
            pass
    if key in auths:
        del auths[key]
        _write_config(config)
    return found
