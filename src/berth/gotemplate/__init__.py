"""Go's text/template as docker's --format uses it (with docker/cli's template functions),
and docker's `table` output aligned the way Go's text/tabwriter does it. A shared utility:
any front door (and any layer) may use it.

Modules, each importing only those before it: values (the data model below), lexer,
parser, fmt (printing values), tabwriter, exec (functions, execution, the entry points;
it loads fmt and tabwriter on first use, which keeps `ps --format` start-up as it was).

How Python data maps onto Go values:

- dict is a map[string]interface{}: a missing key prints "<no value>" (or, with
  missingkey_error, fails "map has no entry for key"); keys iterate and print sorted.
- GoStruct is a struct: its fields keep their order (in `json` too), it is always true,
  and a missing field is "can't evaluate field X in type T"; its json_fields rename and
  omit fields in `json` as json tags do, its stringer prints it as a String() method.
- NilSlice and NilMap are nil slices and maps: empty, printed [] and map[], JSON null;
  GoTime is a time.Time: printed as Go's Time.String(), its RFC 3339 text in JSON;
  Stringer any other value with a String() method (printed so, its value in JSON).
- list/tuple are slices; str, int, float, bool, complex are Go's basic kinds.
- None is a nil pointer: it prints "<nil>" and ".Field" on it fails "nil pointer evaluating".
- any other object is a struct with methods: ".Name" reads an attribute, or calls it with
  the action's arguments when it is callable.
"""

from berth.gotemplate.exec import Template, parse, render, render_table
from berth.gotemplate.values import GoStruct, GoTime, NilMap, NilSlice, Stringer, TemplateError

__all__ = ["GoStruct", "GoTime", "NilMap", "NilSlice", "Stringer", "Template", "TemplateError", "parse", "render",
           "render_table"]
