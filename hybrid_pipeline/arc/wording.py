"""Counts in messages: `plural(1, "task")` is "1 task", `plural(2, "task")` is "2 tasks".

Lives at the bottom of the package (it imports nothing) so that every layer, the data layer
included, words its counts the same way.
"""

from __future__ import annotations


def plural(count: int, noun: str, plural_form: str | None = None, *, thousands: bool = False) -> str:
    """`count` and `noun`, the noun plural unless the count is exactly 1 (`plural_form` where adding
    "s" is wrong: "process" -> "processes"). `thousands` writes 12,345."""
    number = f"{count:,}" if thousands else str(count)
    return f"{number} {noun if count == 1 else plural_form or noun + 's'}"
