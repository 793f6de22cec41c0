"""berth: a Docker-compatible container engine."""

__version__ = "0.1.0"
API_VERSION = "1.47"

# The collector's young generation at 50,000 allocations, not 700, in a command's process
# (berth's CLI, berth-runtime): a command allocates some 100,000 objects as it imports what it
# needs, and each full collection meanwhile walked all of them again (~2 ms of a 55 ms `run`).
# A long-lived command (an API server, a foreground container) still collects its cycles.
GC_THRESHOLDS = (50_000, 10, 10)
