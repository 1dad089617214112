"""Small text helpers shared by rendering, paging, the journal and the emulator."""

from __future__ import annotations

ELLIPSIS = "…"


def shorten(text: str, limit: int, *, one_line: bool = False) -> str:
    """Shorten to about `limit` characters, at a word break when one is near, ending with an ellipsis.

    `one_line` first folds every run of white space (newlines included) into one space.
    """
    text = " ".join(text.split()) if one_line else text.strip()
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 1)]
    space = cut.rfind(" ", max(0, len(cut) - 40))
    if space > 0:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def format_duration(seconds: float) -> str:
    """A duration as the Task API docs write bands: ``45 s``, ``100 s``, ``5 min``, ``1.5 h``, ``2 h``.

    Below ten minutes an uneven duration stays in seconds (``100 s`` would misstate a documented band
    as ``2 min``); above, minutes and then hours take over (``12 min 5 s``, ``1 h 2 min``).
    """
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    if whole < 60 or (secs and whole < 600):
        return f"{whole} s"
    if whole < 3600:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    if whole % 360 == 0:  # whole tenths of an hour read as the docs do: 1.5 h, 2 h
        return f"{whole / 3600:g} h"
    hours, rest = divmod(whole, 3600)
    return f"{hours} h {rest // 60} min"
