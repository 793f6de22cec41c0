"""Docker's per-layer progress lines on a terminal (its jsonmessage rendering):

    5476e983036e: Loading layer [=========================>                         ]  1.07MB/2.14MB

One line per layer, redrawn in place; used by load, save, import and export."""

import os
import time

BAR_WIDTH = 50
MIN_COLUMNS_FOR_BAR = 110  # docker draws the bar only on a terminal wider than this
REDRAW_INTERVAL = 0.1



def human_size(size: float) -> str:
    """go-units HumanSize: 4 significant digits ("1.983MB"), as docker's progress shows it."""
    from berth.units import human_size as sized  # lazy: only a size shown

    return sized(size, 4)


def render(done: int, total: int, columns: int) -> str:
    """docker's JSONProgress.String() without the time-left estimate."""
    if total <= 0:
        return f"{human_size(done):>8}" if done > 0 else ""
    filled = min(int(done / total * 100) // 2, BAR_WIDTH)
    bar = f"[{'=' * filled}>{' ' * (BAR_WIDTH - filled)}] " if columns > MIN_COLUMNS_FOR_BAR else ""
    if done > total:
        return bar + f"{human_size(done):>8}"
    return bar + f"{human_size(done):>8}/{human_size(total)}"


class LayerProgress:
    """A `progress(ident, action, done, total)` callback drawing on a terminal stream.

    A new `ident` ends the previous line; reaching `total` ends the current one."""

    def __init__(self, stream):
        self.stream = stream
        try:
            self.columns = os.get_terminal_size(stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            self.columns = 80
        self.current = None
        self.last_draw = 0.0

    def __call__(self, ident: str, action: str, done: int, total: int) -> None:
        finished = total > 0 and done >= total
        if ident != self.current:
            self.close()
            self.current = ident
        elif not finished and time.monotonic() - self.last_draw < REDRAW_INTERVAL:
            return
        self.last_draw = time.monotonic()
        self.stream.write(f"\x1b[2K\r{ident}: {action} {render(done, total, self.columns)}")
        if finished:
            self.stream.write("\n")
            self.current = None
        self.stream.flush()

    def close(self) -> None:
        if self.current is not None:
            self.stream.write("\n")
            self.stream.flush()
            self.current = None


def for_terminal(stream, quiet: bool = False):
    """A LayerProgress when `stream` is a terminal and not quiet, else None (draw nothing)."""
    if quiet:
        return None
    try:
        if not stream.isatty():
            return None
    except (OSError, ValueError):
        return None
    return LayerProgress(stream)
