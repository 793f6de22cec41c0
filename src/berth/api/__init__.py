"""The Docker Engine API front door (`berth system service`): HTTP onto the same engine calls
as the CLI; see server.py for how it serves and http.py for what an endpoint sees."""
