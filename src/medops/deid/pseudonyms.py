"""Consistent surrogates for detected PHI: the ``pseudonymize`` policy of ``medops data deid``.

Every surrogate is derived from HMAC-SHA256 under a secret key read from an environment
variable (never stored with the data, never printed), so the same original string maps to
the same surrogate across a dataset, and a different key gives unrelated surrogates:

- ``NAME`` -> ``Name-<8 hex>``; ``ID``, ``CONTACT``, ``LOCATION``, ``ORGANIZATION`` ->
  ``[ID-<8 hex>]`` and so on. The hex digits are the HMAC of the category and the original
  casefolded, whitespace-normalised string ("DUPONT  Marie" and "Dupont Marie" agree).
- ``DATE`` -> the same date shifted by a per-patient number of days in ±[1, 365] (from the
  HMAC of the patient id), written in the original's format, so intervals between one
  patient's dates are preserved. A date form that cannot be parsed reliably becomes
  ``[DATE]`` and is counted.
- ``AGE`` (only ages over 89 are detected) -> ``[AGE>89]``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Sequence

from medops.deid.spans import Span
from medops.privacy.keys import MIN_KEY_BYTES, PseudonymKeyError

MAX_SHIFT_DAYS = 365
HEX_DIGITS = 8

_EN_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_EN_ABBR = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_FR_MONTHS = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
]
_FR_PLAIN = [
    "janvier",
    "fevrier",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "aout",
    "septembre",
    "octobre",
    "novembre",
    "decembre",
]
# month word (lower case) -> (table it came from, month number); first table wins
_MONTH_OF: dict[str, tuple[tuple[str, ...], int]] = {}
for _table in (_EN_MONTHS, _EN_ABBR, _FR_MONTHS, _FR_PLAIN):
    for _number, _word in enumerate(_table, start=1):
        _MONTH_OF.setdefault(_word, (tuple(_table), _number))
_MONTH_OF.setdefault("sept", (tuple(_EN_ABBR), 9))

_MONTH = r"(?P<month>[^\W\d_]+)\.?"
_YEAR = r"(?P<year>\d{4})"
_ISO = re.compile(r"(?P<year>\d{4})-(?P<a>\d{1,2})-(?P<b>\d{1,2})")
_NUMERIC = re.compile(r"(?P<a>\d{1,2})(?P<sep>[/.-])(?P<b>\d{1,2})(?P=sep)(?P<year>\d{4}|\d{2})")
_MONTH_DAY_YEAR = re.compile(rf"{_MONTH}\s+(?P<day>\d{{1,2}})(?P<comma>,?)\s+{_YEAR}")
_DAY_MONTH_YEAR = re.compile(rf"(?P<day>\d{{1,2}})(?P<er>er)?\s+{_MONTH}\s+{_YEAR}")


def normalised(value: str) -> str:
    return " ".join(value.casefold().split())


class Pseudonymizer:
    """Surrogates under one key; stateless apart from the key, so chunks agree."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise PseudonymKeyError(
                f"the pseudonymisation key must be at least {MIN_KEY_BYTES} bytes"
            )
        self._key = key

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymizer(key=<hidden>)"

    def _mac(self, purpose: str, value: str) -> bytes:
        message = f"{purpose}\x00{value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def token(self, category: str, original: str) -> str:
        """``Name-3f9a1c0b`` for names, ``[ID-3f9a1c0b]``-style tags for the other types."""
        digest = self._mac(category, normalised(original)).hex()[:HEX_DIGITS]
        if category == "NAME":
            return f"Name-{digest}"
        return f"[{category}-{digest}]"

    def shift_days(self, patient: str) -> int:
        """Days to add to every date of ``patient``: non-zero, within ±365."""
        number = int.from_bytes(self._mac("date-shift", patient)[:8], "big")
        days = 1 + (number >> 1) % MAX_SHIFT_DAYS
        return days if number & 1 else -days

    def surrogate(self, span_text: str, category: str, shift: int, dayfirst: bool) -> str | None:
        """The replacement for one span; None for a date that cannot be parsed."""
        if category == "DATE":
            return shift_date(span_text, shift, dayfirst)
        if category == "AGE":
            return "[AGE>89]"
        return self.token(category, span_text)

    def apply(
        self, text: str, spans: Sequence[Span], patient: str, dayfirst: bool = False
    ) -> tuple[str, int]:
        """``text`` with each (sorted, non-overlapping) span replaced; and unparsed dates."""
        parts, cursor, unparsed = [], 0, 0
        shift = self.shift_days(patient)
        for span in spans:
            parts.append(text[cursor : span.start])
            replacement = self.surrogate(text[span.start : span.end], span.type, shift, dayfirst)
            if replacement is None:
                unparsed += 1
                replacement = f"[{span.type}]"
            parts.append(replacement)
            cursor = span.end
        parts.append(text[cursor:])
        return "".join(parts), unparsed


def _two(padded: bool, value: int) -> str:
    return f"{value:02d}" if padded else str(value)


def _cased(original: str, word: str) -> str:
    if original.isupper() and len(original) > 1:
        return word.upper()
    return word.capitalize() if original[:1].isupper() else word


def _date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _full_year(year: str) -> int:
    if len(year) == 4:
        return int(year)
    # two-digit years: a year after this one is read as last century ("3/14/62")
    this = dt.date.today().year % 100
    return (2000 if int(year) <= this else 1900) + int(year)


def shift_date(text: str, days: int, dayfirst: bool = False) -> str | None:
    """``text`` (a whole date) moved by ``days``, in the same format; None if not parsed.

    Forms: ISO ``2012-03-14``; numeric ``3/14/2012``, ``14/03/2012``, ``14.03.12``
    (month first unless the first number is over 12, or ``dayfirst`` when both are 12 or
    less); ``March 14, 2012``, ``Mar 14 2012``, ``14 March 2012``, ``14 mars 2012``,
    ``1er mars 2012``. Anything else (partial dates, weekdays, years) is None.
    """
    text = text.strip()
    if m := _ISO.fullmatch(text):
        old = _date(int(m["year"]), int(m["a"]), int(m["b"]))
        if old is None:
            return None
        new = old + dt.timedelta(days=days)
        return f"{new.year:04d}-{new.month:02d}-{new.day:02d}"
    if m := _NUMERIC.fullmatch(text):
        a, b = int(m["a"]), int(m["b"])
        day_first = a > 12 or (dayfirst and b <= 12)
        month, day = (b, a) if day_first else (a, b)
        old = _date(_full_year(m["year"]), month, day)
        if old is None:
            return None
        new = old + dt.timedelta(days=days)
        year = f"{new.year:04d}" if len(m["year"]) == 4 else f"{new.year % 100:02d}"
        first, second = (new.day, new.month) if day_first else (new.month, new.day)
        padded = m["a"].startswith("0") or m["b"].startswith("0")  # "03/14" pads both
        return f"{_two(padded, first)}{m['sep']}{_two(padded, second)}{m['sep']}{year}"
    for pattern in (_MONTH_DAY_YEAR, _DAY_MONTH_YEAR):
        if (m := pattern.fullmatch(text)) is None:
            continue
        found = _MONTH_OF.get(m["month"].casefold())
        if found is None:
            return None
        table, month = found
        old = _date(int(m["year"]), month, int(m["day"]))
        if old is None:
            return None
        new = old + dt.timedelta(days=days)
        name = _cased(m["month"], table[new.month - 1])
        dot = "." if text[m.end("month") : m.end("month") + 1] == "." else ""
        if pattern is _MONTH_DAY_YEAR:
            return f"{name}{dot} {_two(m['day'].startswith('0'), new.day)}{m['comma']} {new.year}"
        er = "er" if m["er"] and new.day == 1 else ""
        return f"{_two(m['day'].startswith('0'), new.day)}{er} {name}{dot} {new.year}"
    return None
