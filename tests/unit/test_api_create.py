"""The API's create translation (berth.api.create): docker's Config + HostConfig JSON -> the
engine's CreateRequest, and the refusals docker's daemon makes of bad values."""

import pytest

from berth.api.create import create_request
from berth.errors import InvalidArgument


def request(**body):
    return create_request({"Image": "busybox", **body}, None, engine=None)


def test_entrypoint_forms():
    assert request().entrypoint is None  # the image's
    assert request(Entrypoint=[]).entrypoint is None  # docker: empty is "not given"
    assert request(Entrypoint=[""]).entrypoint == ""  # cleared, as --entrypoint ""
    assert request(Entrypoint="/bin/sh").entrypoint == ["/bin/sh"]
    assert request(Entrypoint=["/bin/sh", "-c"]).entrypoint == ["/bin/sh", "-c"]
    assert request(Cmd="true").cmd == ["true"]


def test_defaults_are_the_cli_defaults():
    req = request(HostConfig={"NetworkMode": "default", "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
                              "PidsLimit": 0, "MemorySwappiness": -1, "ConsoleSize": [0, 0], "IpcMode": ""})
    assert req.network is None and req.restart == {"Name": "no", "MaximumRetryCount": 0}
    assert req.host_config == {} and req.user is None and req.workdir is None and req.hostname is None


def test_attach_and_stdin_fields_are_kept():
    req = request(AttachStdin=True, AttachStdout=True, AttachStderr=False, OpenStdin=True, StdinOnce=True, Tty=True)
    assert req.config == {"AttachStdin": True, "AttachStdout": True, "AttachStderr": False, "StdinOnce": True}
    assert req.open_stdin and req.tty


def test_ports_are_checked_and_keyed_as_docker_keys_them():
    req = request(ExposedPorts={"90/tcp": {}, "53/udp": {}},
                  HostConfig={"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}})
    assert req.exposed_ports == {"53/udp": {}, "90/tcp": {}}
    assert req.port_bindings == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}
    with pytest.raises(InvalidArgument, match="invalid hostPort: x"):
        request(HostConfig={"PortBindings": {"80/tcp": [{"HostPort": "x"}]}})


@pytest.mark.parametrize("host, says", [
    ({"RestartPolicy": {"Name": "sometimes"}}, "invalid restart policy: unknown policy 'sometimes'"),
    ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}, "can only be used with 'on-failure'"),
    ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}, "cannot be negative"),
    ({"IpcMode": "bogus"}, "invalid IPC mode: bogus"),
    ({"PidMode": "container:"}, "invalid PID mode: container:"),
    ({"UTSMode": "private"}, "invalid UTS mode: private"),
    ({"ShmSize": -1}, "SHM size can not be less than 0"),
    ({"Sysctls": {"kernel.panic": "1"}}, "sysctl 'kernel.panic' is not allowed"),
    ({"LogConfig": {"Type": "none", "Config": {"max-size": "1m"}}}, "invalid logging opts for driver none"),
])
def test_bad_values_are_refused(host, says):
    with pytest.raises(InvalidArgument, match=says):
        request(HostConfig=host)


def test_one_string_stands_for_a_list_of_one_only_in_strslice_fields():
    """docker's StrSlice fields (Cmd, Entrypoint, CapAdd, CapDrop) take a string too; its
    []string fields (Env, Binds, ...) refuse one, as Go's decoder does."""
    assert request(Cmd="true").cmd == ["true"]
    assert request(HostConfig={"CapAdd": "NET_ADMIN"}).host_config["CapAdd"] == ["CAP_NET_ADMIN"]
    with pytest.raises(InvalidArgument, match="cannot unmarshal string into Go struct field .*Env of type"):
        request(Env="A=1")
    with pytest.raises(InvalidArgument, match=r"HostConfig.Binds of type \[\]string"):
        request(HostConfig={"Binds": "/a:/b"})


@pytest.mark.parametrize("body", [{"Env": [1]}, {"HostConfig": []}, {"Labels": "x"}, {"Image": ""}, {"Image": None}])
def test_malformed_json_shapes_are_400(body):
    with pytest.raises(InvalidArgument):
        create_request({"Image": "busybox", **body}, None, engine=None)
