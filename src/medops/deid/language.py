"""Guess whether a clinical note is English or French, to pick the spaCy model.

Function words decide: they are frequent in any note, differ between the two languages,
and need no model. A note with none of either (a list of lab values) counts as English,
whose model is the default.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-zà-ÿ']+")
_EN = frozenset(
    _WORD.findall(
        "the and of with was is for to in on at he she his her has have had no not "
        "denies history from this that were are be by"
    )
)
_FR = frozenset(
    _WORD.findall(
        "le la les des du de et est avec pour dans sur au aux il elle son sa ses une un pas "
        "patiente antécédents sans qui que été a ont chez"
    )
)


def guess_language(text: str) -> str:
    """``"fr"`` when French function words outnumber English ones, else ``"en"``."""
    words = _WORD.findall(text[:5000].casefold())
    french = sum(w in _FR for w in words)
    english = sum(w in _EN for w in words)
    return "fr" if french > english else "en"
