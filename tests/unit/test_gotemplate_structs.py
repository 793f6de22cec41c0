"""Go values docker's templates see (berth.gotemplate values and cli.inspect_view): structs with
json tags, nil slices and maps, time.Time, methods of named map types, MarshalJSON rows; the
expected strings are what Go and docker 28 print."""

from berth.cli.contexts import Row
from berth.cli.inspect_view import struct_view, typed
from berth.gotemplate import GoStruct, GoTime, NilMap, NilSlice, render, render_table


def test_nil_slices_and_maps_print_empty_but_encode_null():
    data = {"Env": NilSlice(), "Volumes": NilMap(), "Cmd": ["sh"]}
    assert render("{{.Env}} {{.Volumes}} {{len .Env}} {{if .Env}}x{{else}}empty{{end}}", data) == \
        "[] map[] 0 empty"
    assert render("{{json .Env}} {{json .Volumes}} {{json .Cmd}}", data) == 'null null ["sh"]'


def test_struct_json_uses_its_tags_and_omitempty():
    struct = GoStruct("PortBinding", {"HostIP": "", "HostPort": "80"})
    struct.json_fields = (("HostIP", "HostIp", False), ("HostPort", "HostPort", True))
    assert render("{{.HostIP}}|{{.}}|{{json .}}", struct) == '|{ 80}|{"HostIp":"","HostPort":"80"}'
    struct["HostPort"] = ""
    assert render("{{json .}}", struct) == '{"HostIp":""}'


def test_go_time_prints_as_time_string_and_encodes_rfc3339():
    data = {"At": GoTime("2026-12-07T10:20:07.998970090Z"), "Zero": GoTime("0001-01-01T00:00:00Z"),
            "Off": GoTime("2026-12-07T12:20:07+02:00")}
    assert render("{{.At}}|{{.Zero}}|{{.Off}}", data) == \
        "2026-12-07 10:20:07.99897009 +0000 UTC|0001-01-01 00:00:00 +0000 UTC|2026-12-07 12:20:07 +0200 +0200"
    assert render("{{json .At}}", data) == '"2026-12-07T10:20:07.998970090Z"'


def test_table_header_label_method():
    rows = [Row("*formatter.ContainerContext", {"Names": "web"})]
    rows[0].Label = lambda name: {"com.example.tier": "front"}.get(name, "")
    text = render_table('table {{.Names}}\t{{.Label "com.example.tier"}}\t{{.Label "a_b-c"}}', rows,
                        {"Names": "NAMES"})
    assert text.splitlines() == ["NAMES     tier      a b c", "web       front     "]  # tabwriter pads tab-ended cells


def test_rows_marshal_json_sorted_and_html_escaped():
    row = Row("*formatter.imageContext", {"Tag": "<none>", "ID": "abc", "Ports": "a->b & c"})
    assert render("{{json .}}", row) == '{"ID":"abc","Ports":"a-\\u003eb \\u0026 c","Tag":"\\u003cnone\\u003e"}'


def test_container_struct_view_go_names_and_struct_printing():
    record = {"Id": "c0ffee", "State": {"Status": "running", "Running": True, "Pid": 7},
              "HostConfig": {"RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
                             "NanoCpus": 1500000000, "CpuShares": 512, "Ulimits": [{"Name": "nofile", "Soft": 1,
                                                                                     "Hard": 2}]},
              "Config": {"Env": None, "ExposedPorts": {"80/tcp": {}}}, "Extra": "kept"}
    view = struct_view("container", record)
    assert render("{{.ID}} {{.HostConfig.RestartPolicy}} {{.HostConfig.NanoCPUs}} {{.HostConfig.CPUShares}}",
                  view) == "c0ffee {unless-stopped 0} 1500000000 512"
    assert render("{{.HostConfig.Ulimits}} {{.Config.ExposedPorts}} {{json .Config.Env}} {{.Extra}}", view) == \
        "[nofile=1:2] map[80/tcp:{}] null kept"
    assert render('{{json .HostConfig.RestartPolicy}}', view) == '{"Name":"unless-stopped","MaximumRetryCount":0}'
    assert render("{{.State}}", view) == "{running true false false false false 7 0    <nil>}"
    assert typed(None, "*RestartPolicy") is None and typed(None, "i") == 0


def test_embedded_structs_print_nested_and_promote_their_fields():
    """Go prints an embedded struct (HostConfig's Resources, NetworkSettings' two bases) as a
    nested {...} where it is declared, while templates reach its fields directly."""
    settings = struct_view("network", {})  # any struct without embedding prints flat
    assert render("{{.ConfigFrom}}", settings) == "{}"
    view = typed({"Bridge": "", "SandboxID": "s1", "IPAddress": "10.0.0.2", "Networks": {}}, "NetworkSettings")
    assert render("{{.}}", view) == "{{ s1  map[] false  0 [] []} {   0 10.0.0.2 0  } map[]}"
    assert render("{{.IPAddress}} {{.SandboxID}}", view) == "10.0.0.2 s1"
    assert render("{{printf \"%+v\" .}}", view).startswith("{NetworkSettingsBase:{Bridge: SandboxID:s1 ")
    host = typed({"NetworkMode": "bridge", "CpuShares": 512, "Memory": 1 << 20}, "HostConfig")
    text = render("{{.}}", host)
    assert " {512 1048576 0  0 [] [] [] [] [] 0 0 0 0   [] [] [] 0 0 0 0 <nil> <nil> <nil> [] 0 0 0 0} " in text
    assert render("{{.CPUShares}} {{json .Memory}}", host) == "512 1048576"
