"""Values written to files that spreadsheet programs open (CSV, XLSX, exports) must
never run as formulas: a leading ``= + - @ TAB CR`` gets a ``'`` in front, which
reading removes again, so writing and reading are exact inverses."""

from __future__ import annotations

import re

#: A value a spreadsheet would evaluate, possibly behind quotes hub added before.
_FORMULA_LIKE = re.compile(r"'*[=+\-@\t\r]")
#: A phone in international format is harmless and stays as typed.
_PLAIN_PHONE = re.compile(r"\+\d{6,15}")


def neutralize_formula(text: str) -> str:
    """Prefix ``'`` to a string a spreadsheet would run as a formula."""
    if _FORMULA_LIKE.match(text) and not _PLAIN_PHONE.fullmatch(text):
        return "'" + text
    return text


def restore_formula(text: str) -> str:
    """Undo ``neutralize_formula``: ``'=1+2`` reads as ``=1+2``."""
    if text.startswith("'") and _FORMULA_LIKE.match(text, 1):
        return text[1:]
    return text
