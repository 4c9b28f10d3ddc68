"""Text hygiene: what an annotator may send, and what an export may contain.

A message keeps its words; whitespace runs become one space; control characters, zero-width spaces and the bidi
embedding/override/isolate controls (which can flip how the rest of a line reads) are removed. It counts as a turn
only with a visible character. Export cells lose control characters, and in CSV a cell a spreadsheet would run as a
formula (starting with = + - @, after a tab or CR too) is prefixed with an apostrophe.
"""
import re
import unicodedata

BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c"
ZERO_WIDTH = "\u200b\u2060\ufeff\u180e"
REMOVED = re.compile(f"[{BIDI_CONTROLS}{ZERO_WIDTH}\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
INVISIBLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"}
FORMULA_START = tuple("=+-@\t\r")


def clean_message(text):
    """The message as stored: removed characters gone, whitespace runs (tabs, newlines) made one space."""
    return " ".join(REMOVED.sub("", text).split())


def has_visible(text):
    return any(unicodedata.category(ch) not in INVISIBLE_CATEGORIES for ch in text)


def export_value(value):
    """A JSON export value: strings lose control characters (tab and newline stay)."""
    return REMOVED.sub("", value) if isinstance(value, str) else value


def spreadsheet_cell(value):
    """A CSV export cell: no control characters, and never a formula for a spreadsheet."""
    if not isinstance(value, str):
        return value
    value = export_value(value)
    return "'" + value if value.startswith(FORMULA_START) else value
