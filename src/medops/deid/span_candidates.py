"""Capitalised word runs that may be a name, a place or an organisation, and their features.

Rules find the names, towns and services they were written for; blind batches of notes
showed the rest (small towns abroad, organisations with no head word, surnames in
capitals) is missed whatever list is added (issue 17). What these spans share is their
shape and what surrounds them: a capitalised run after "Lives in" or "Client:", at the end
of a note's heading, before "Ltd" or ", ON". ``candidates`` finds every such run and
``features`` describes it in those terms, for ``span_classifier`` to score. Both training
(``scripts/train_span_classifier.py``) and detection use these two functions, so what the
model learned is what it is asked.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from medops.deid.places import country_names, region_names, town_names
from medops.deid.terminology import normalised, terminology

_TOKEN = re.compile(r"[^\W_]+(?:[-'’.][^\W_]+)*\.?|[^\w\s]")
# lowercase words and signs that may join two capitalised words inside one name
# ("Comité des fêtes de Lescoff", "Sport & Spine", "van der Merwe", "Haileybury, ON")
_JOINERS = frozenset(
    {"de", "du", "des", "la", "le", "les", "d", "l", "sur", "en", "à", "au", "aux", "et"}
    | {"of", "the", "and", "for", "van", "der", "von", "y", "di", "da"}
    | {"&", ",", "-", "'", "’"}
)
_SPLITTERS = frozenset({",", "à", "au", "aux"})
# a capitalised first word that is a preposition or an article, not part of a name
_LEADING = frozenset(
    {"from", "in", "at", "to", "near", "the", "de", "du", "des", "le", "la", "les", "vers"}
    | {"chez", "depuis", "en", "dans", "sur", "pour", "par", "avec", "with", "for", "of"}
)
_PARTICLES = frozenset({"de", "du", "des", "d"})  # French names a service so; English "of" is prose
MAX_BRIDGE = 4  # lowercase words and particles between two runs of one service's name
MAX_NUMBER = 4  # digits of the number that may end a run ("Arc 1800"); more is an ID
MAX_JOINERS = 2  # joiners in a row between two capitalised words
MAX_WORDS = 8  # longer runs are prose in title case, not one name
MAX_ABBREVIATION = 4  # "St.", "Th.", "Mgr.": a longer word ending in a full stop ends a run
LABEL_REACH = 48  # characters before a run in which its field label ("Employeur :") ends
_LABEL = re.compile(r"([^\W\d_][\w'’ -]{0,25}?)\s*:\s*$")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+|\n\s*)$")


@dataclass(frozen=True)
class Token:
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Candidate:
    """Tokens ``first``..``last`` (inclusive) of a text: characters ``start``..``end``."""

    first: int
    last: int
    start: int
    end: int


def tokens(text: str) -> list[Token]:
    return [Token(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]


def _capitalised(token: Token) -> bool:
    word = token.text
    elided = word[:2].lower() in ("d'", "l'", "d’", "l’") and len(word) > 2  # "d'Anniviers"
    return word[0].isupper() or (elided and word[2].isupper())


def _ends_sentence(token: Token) -> bool:
    """A word with its full stop ("Kilkeel.", "KS."), not an initial or abbreviation ("St.",
    "H.")."""
    word = token.text[:-1]
    capitals = len(word) >= 2 and word.isalpha() and word.isupper()  # "KS.", "VVP." end it
    return token.text.endswith(".") and (len(token.text) > MAX_ABBREVIATION or capitals)


def candidates(text: str, toks: list[Token]) -> list[Candidate]:
    """Maximal runs of capitalised words on one line, joined by at most ``MAX_JOINERS``
    joiners; runs of more than ``MAX_WORDS`` tokens are left out."""
    found = []
    i = 0
    while i < len(toks):
        if not _capitalised(toks[i]):
            i += 1
            continue
        last = i
        while True:
            k = last + 1
            while k < len(toks) and k - last <= MAX_JOINERS and toks[k].text.lower() in _JOINERS:
                k += 1
            same_line = k < len(toks) and "\n" not in text[toks[last].end : toks[k].start]
            if not (same_line and _capitalised(toks[k])) or _ends_sentence(toks[last]):
                break
            last = k
        if last - i < MAX_WORDS:
            found.append(Candidate(i, last, toks[i].start, toks[last].end))
        found += _parts(toks, i, last)
        number = last + 1  # "SAMU 971", "Shaft 4": a site or service named by its number
        if (
            number < len(toks)
            and toks[number].text.isdigit()
            and len(toks[number].text) <= MAX_NUMBER
            and text[toks[last].end : toks[number].start] == " "
            and last - i < MAX_WORDS
            and not any(ch.isdigit() for t in toks[i : last + 1] for ch in t.text)  # "FiO2 60"
        ):
            found.append(Candidate(i, number, toks[i].start, toks[number].end))
        i = last + 1
    return found + _bridged(text, toks, found)


def _bridged(text: str, toks: list[Token], runs: list[Candidate]) -> list[Candidate]:
    """Two runs joined by lowercase words that end in a particle, as one more candidate:
    French names a service by its kind ("Cabinet médical des Arcs", "District sanitaire
    de Pikine", "Centre d'intervention de crise des Pâquis")."""
    bridged = []
    for left, right in itertools.pairwise(runs):
        gap = toks[left.last + 1 : right.first]
        if (
            0 < len(gap) <= MAX_BRIDGE
            and gap[-1].text.lower() in _PARTICLES
            and all(t.text[0].islower() for t in gap)
            and any(len(t.text) > 3 and t.text not in _JOINERS for t in gap)  # "rural"
            and "\n" not in text[left.end : right.start]
            and right.last - left.first < MAX_WORDS + MAX_BRIDGE
        ):
            bridged.append(Candidate(left.first, right.last, left.start, right.end))
    return bridged


def _parts(toks: list[Token], first: int, last: int) -> list[Candidate]:
    """A run's pieces between commas and "à"/"au": an organisation, then its town
    ("Flint Hills Family Medicine, Emporia, KS"; "Parents à Sion") are scored apart too;
    and the run without a sentence's first word when that is a preposition ("From Lytton")."""
    cuts = [k for k in range(first + 1, last) if toks[k].text.lower() in _SPLITTERS]
    if toks[first].text.lower() in _LEADING and first < last:  # "From Lytton", "Vers Annecy"
        cuts.insert(0, first)
    if not cuts:
        return []
    parts = []
    for start, end in zip([first - 1, *cuts], [*cuts, last + 1], strict=True):
        lo, hi = start + 1, end - 1
        while lo <= hi and not _capitalised(toks[lo]):
            lo += 1
        while hi >= lo and not _capitalised(toks[hi]):
            hi -= 1
        if lo <= hi and hi - lo < MAX_WORDS:
            parts.append(Candidate(lo, hi, toks[lo].start, toks[hi].end))
    return parts


def features(text: str, toks: list[Token], candidate: Candidate, language: str) -> dict[str, int]:
    """What the run is made of (words, head, suffix, capitals, gazetteer and terminology
    hits) and what surrounds it (three words before, two after, the field label, line
    and sentence position, a heading before it). Indicator features, for a linear model."""
    first, last = candidate.first, candidate.last
    words = [t.text for t in toks[first : last + 1] if t.text[0].isalpha()]
    lowered = [word.lower() for word in words]
    found = {f"w={word}" for word in lowered}
    found |= {f"head={lowered[-1]}", f"first={lowered[0]}", f"suffix={lowered[-1][-3:]}"}
    found |= {f"words={min(len(words), 5)}", f"lang={language}"}
    if toks[last].text.isdigit():
        found.add("numbered")
    for back in (1, 2, 3):
        found.add(f"prev{back}={toks[first - back].text.lower() if first >= back else '<s>'}")
    for ahead in (1, 2):
        if last + ahead < len(toks):
            found.add(f"next{ahead}={toks[last + ahead].text.lower()}")
    line_start = text.rfind("\n", 0, candidate.start) + 1
    line_end = text.find("\n", candidate.end)
    before = text[line_start : candidate.start]
    after = text[candidate.end : len(text) if line_end < 0 else line_end]
    label = _LABEL.search(before[-LABEL_REACH:])  # not the whole of a one-line text
    if label:
        found.add(f"label={label.group(1).lower().split()[-1]}")
    heading = before.strip()
    phrase = " ".join(words)
    towns = town_names()
    known = terminology()
    norms = [normalised(word) for word in words]
    flags = {
        "all_caps": all(word.isupper() and len(word) > 1 for word in words),
        "hyphen": any("-" in word for word in words),
        "initial": any(len(word) <= 3 and word.endswith(".") for word in words),
        "comma": any(t.text == "," for t in toks[first : last + 1]),
        "line_start": not before.strip(),
        "line_end": not after.strip(),
        "sentence_start": bool(
            _SENTENCE_START.search(text[max(0, candidate.start - 3) : candidate.start])
        )
        or candidate.start == 0,
        "after_heading": bool(heading) and heading.isupper(),
        "town": phrase in towns or any(word in towns for word in words),
        "region": phrase in region_names(),
        "country": phrase in country_names(),
        "vocabulary_all": all(norm in known.vocabulary for norm in norms),
        "vocabulary_any": any(norm in known.vocabulary for norm in norms),
        "eponym_any": any(norm in known.eponyms for norm in norms),
        "term": " ".join(norms) in known.terms,
    }
    found |= {name for name, on in flags.items() if on}
    return dict.fromkeys(found, 1)
