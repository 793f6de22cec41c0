"""Go's text/tabwriter with flags 0, as docker aligns `table` output: cells end at a tab,
lines at a newline; a column is a run of consecutive lines that have a cell in it, as wide
as its widest cell plus padding (at least minwidth). A line's last cell is not part of any
column."""


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """text aligned like tabwriter.NewWriter(out, minwidth, 1, padding, ' ', 0) would write it."""
    sections = text.split("\f")  # a form feed ends a line and flushes, as in Go
    formatted = [_tab_format(s + "\n", minwidth, padding) for s in sections[:-1]]
    formatted.append(_tab_format(sections[-1], minwidth, padding))
    return "".join(formatted)


def _tab_format(text: str, minwidth: int, padding: int) -> str:
    lines = [line.replace("\v", "\t").split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(start: int, end: int) -> None:
        for i in range(start, end):
            for j, cell in enumerate(lines[i]):
                out.append(cell)
                if j < len(widths):
                    out.append(" " * (widths[j] - len(cell)))
            if i + 1 < len(lines):
                out.append("\n")

    def format_block(start: int, end: int) -> None:
        column = len(widths)
        line = start
        while line < end:
            if column >= len(lines[line]) - 1:
                line += 1
                continue
            # a block of lines with a cell in this column starts here
            write_lines(start, line)
            start = line
            width = minwidth
            while line < end and column < len(lines[line]) - 1:
                width = max(width, len(lines[line][column]) + padding)
                line += 1
            widths.append(width)
            format_block(start, line)
            widths.pop()
            start = line
        write_lines(start, end)

    format_block(0, len(lines))
    return "".join(out)
