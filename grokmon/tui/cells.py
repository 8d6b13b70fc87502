"""Packing labelled cells ("val acc 0.973", "ETA 1:02") into lines of a given width: a cell is never split
while it fits a line, so a number never sits apart from its label. Pure rich.Text; knows no widgets."""

from __future__ import annotations

from rich.text import Text

GAP = "  "  # between two cells on a line


def pack(groups: list[list[Text]], width: int) -> Text:
    """Each group starts on a new line; its cells fill lines up to `width` in order. A cell longer than a
    line wraps at its spaces, on lines of its own."""
    width = max(8, width)
    lines: list[Text] = []
    for cells in groups:
        line: Text | None = None
        for cell in cells:
            if not cell.plain:
                continue
            if len(cell.plain) > width:
                if line is not None:
                    lines.append(line)
                    line = None
                lines.extend(wrap(cell, width))
            elif line is not None and len(line.plain) + len(GAP) + len(cell.plain) <= width:
                line.append(GAP)
                line.append_text(cell)
            else:
                if line is not None:
                    lines.append(line)
                line = cell.copy()
        if line is not None:
            lines.append(line)
    return Text("\n").join(lines)


def wrap(cell: Text, width: int) -> list[Text]:
    """Word-wrap one cell to `width` keeping its styles; a word longer than a line is cut."""
    plain, out, start = cell.plain, [], 0
    while len(plain) - start > width:
        cut = plain.rfind(" ", start, start + width + 1)
        if cut <= start:  # one long word (a path): cut it where the line ends
            out.append(cell[start: start + width])
            start += width
            continue
        out.append(cell[start:cut])
        start = cut + 1
    out.append(cell[start:])
    return [piece for piece in out if piece.plain]


def cell(*parts: tuple[str, str] | str) -> Text:
    """A cell from (text, style) pairs or plain strings: cell(("val acc ", "dim"), ("0.973", "bold"))."""
    return Text.assemble(*parts)
