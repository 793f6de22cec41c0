"""docker's formatter contexts (ps, images, volume ls...): each row a `--format` template
runs on is an object whose placeholders are methods or attributes, and `{{json .}}` holds
all of them. Import-free: `rm` and `ps -q` load the modules that define rows."""


class FormatContext:
    """A row for --format templates. FIELDS: the placeholders `{{json .}}` holds (docker's
    MarshalJSON calls every method without arguments; a field here may be an attribute)."""

    FIELDS: tuple = ()

    def MarshalJSON(self) -> str:  # noqa: N802 - Go's name: the `json` function encodes rows with it
        from berth.gotemplate.exec import marshal_json  # lazy: loaded already when a template runs

        values = {}
        for name in self.FIELDS:
            value = getattr(self, name)
            values[name] = value() if callable(value) else value
        return marshal_json(values)


class Row(FormatContext):
    """A row whose placeholders are plain strings (`values`); `go_type` names docker's
    context in template errors ("can't evaluate field X in type *network.networkContext")."""

    def __init__(self, go_type: str, values: dict):
        self.go_type = go_type
        self.FIELDS = tuple(values)
        self.__dict__.update(values)
