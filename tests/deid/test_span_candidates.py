from __future__ import annotations

from medops.deid.span_candidates import MAX_WORDS, candidates, features, tokens


def runs(text: str) -> list[str]:
    return [text[run.start : run.end] for run in candidates(text, tokens(text))]


def features_of(text: str, run_text: str, language: str = "en") -> dict[str, int]:
    toks = tokens(text)
    [run] = [run for run in candidates(text, toks) if text[run.start : run.end] == run_text]
    return features(text, toks, run, language)


def test_runs_join_capitalised_words_through_particles_and_signs():
    text = "Works at the Café-Restaurant du Bisse with Hendrik van der Merwe."
    # a token keeps its final full stop ("Merwe."): detection trims it from the span
    assert runs(text) == ["Works", "Café-Restaurant du Bisse", "Hendrik van der Merwe."]
    assert runs("Physio at Sport & Spine, Haileybury, ON")[:2] == [
        "Physio",
        "Sport & Spine, Haileybury, ON",
    ]


def test_a_run_is_also_scored_in_pieces_between_commas_and_a():
    # an organisation and its town, or a relative and a town, get their own candidates
    assert runs("Physio at Sport & Spine, Haileybury, ON") == [
        "Physio",
        "Sport & Spine, Haileybury, ON",
        "Sport & Spine",
        "Haileybury",
        "ON",
    ]
    assert runs("Parents à Lussy") == ["Parents à Lussy", "Parents", "Lussy"]
    assert runs("Hendrik van der Merwe") == ["Hendrik van der Merwe"]  # no piece to add
    # a sentence's first word that is a preposition is scored apart from the name after it
    assert runs("From Kelowna; back home") == ["From Kelowna", "Kelowna"]
    assert runs("Anna Lee") == ["Anna Lee"]


def test_lowercase_words_ending_in_a_particle_bridge_two_runs():
    text = "Suivi au Dispensaire rural de Tambacoro puis Office communal. Vu avec Dr Sy"
    found = runs(text)
    assert "Dispensaire rural de Tambacoro" in found
    assert "Tambacoro" in found  # the runs themselves stay candidates
    # no particle before the second run, or a line break: no bridge
    assert "Tambacoro puis Office" not in found
    assert not any("\n" in run for run in runs("Cabinet du\nde Lussy"))


def test_a_short_number_after_a_run_is_one_more_candidate():
    found = runs("Régulation par le SAMU 974 puis Poste Kéré 12345, Bed B 4")
    assert {"SAMU", "SAMU 974"} <= set(found)
    assert "Poste Kéré 12345" not in found  # five digits: an ID, not a site's number
    assert not any(run.endswith("60") for run in runs("VAC FiO2 60 on arrival"))
    assert "numbered" in features_of("Seen at Shaft 4 today", "Shaft 4")


def test_capitals_with_a_full_stop_end_a_run_but_abbreviations_do_not():
    assert runs("Lives in Emporia, KS. Parents at home") == [
        "Lives",
        "Emporia, KS.",
        "Emporia",
        "KS.",
        "Parents",
    ]
    assert runs("Moved to St. Petersburg in May") == ["Moved", "St. Petersburg", "May"]


def test_runs_stop_at_a_line_break_and_skip_lowercase_words():
    assert runs("seen by Anna\nKarlsson at home") == ["Anna", "Karlsson"]
    assert runs("no capitalised word here") == []


def test_a_title_case_line_longer_than_a_name_is_no_run():
    long_title = " ".join(["Word"] * (MAX_WORDS + 1))
    assert runs(long_title) == []
    assert runs(" ".join(["Word"] * MAX_WORDS)) == [" ".join(["Word"] * MAX_WORDS)]


def test_features_describe_the_context_a_place_or_an_employer_has():
    text = "SOCIAL WORK NOTE\nClient: Ana Fifita\nLives in Kilkeel with her sister."
    client = features_of(text, "Ana Fifita")
    assert {"label=client", "line_end", "prev1=:", "lang=en", "words=2"} <= client.keys()
    place = features_of(text, "Kilkeel")
    assert {"prev1=in", "prev2=lives", "next1=with", "head=kilkeel"} <= place.keys()
    assert "line_start" not in place and "label=client" not in place


def test_features_carry_gazetteer_and_terminology_hits():
    assert "town" in features_of("Moved to Lyon last year.", "Lyon")
    colon = features_of("Malignant neoplasm: Colon", "Colon")
    assert {"vocabulary_all", "label=neoplasm"} <= colon.keys()
    assert "vocabulary_all" not in features_of("Works at Brennan Haulage now", "Brennan Haulage")
