"""Issue 17: places and organisations found by shape, cue and gazetteer; clinical words kept.

The traps are medical words spaCy or a head-word pattern takes for names, places or
organisations: drugs, eponyms, anatomy, organisms and lab names.
"""

from __future__ import annotations

import pytest
from presidio_analyzer import RecognizerResult

from medops.deid.detect import detect_phi
from medops.deid.filters import drop_false_positives
from medops.deid.places import region_names, town_names
from medops.deid.scoring import GoldNote, safe_harbor, split_half
from medops.deid.spans import Span
from medops.deid.terminology import build, normalised, terminology
from medops.recipe import Deid

DEID = Deid()


def found(text: str, language: str = "en") -> list[tuple[str, str]]:
    model = DEID.spacy_model_fr if language == "fr" else DEID.spacy_model
    [spans], _ = detect_phi([text], model, language, DEID.score_threshold)
    return [(text[s.start : s.end], s.type) for s in spans]


def covered(text: str, part: str, language: str = "en") -> bool:
    start = text.index(part)
    hits = [s for s, _ in found(text, language)]
    return any(part in hit or hit in part for hit in hits) and all(
        any(text.find(hit) <= i < text.find(hit) + len(hit) for hit in hits)
        for i in range(start, start + len(part))
        if text[i].isalnum()
    )


@pytest.mark.parametrize(
    "text,place",
    [
        ("Family moved from Dearborn, MI last spring.", "Dearborn, MI"),
        ("He farms near Fairmont, Minnesota and sells hogs.", "Fairmont, Minnesota"),
        ("She lives in Battle Ground with her son.", "Battle Ground"),
        ("Her sister drove up from Hartford on Sunday.", "Hartford"),
        ("Il a travaillé vingt ans près de Quimper.", "Quimper"),
        ("Adresse postale : Saint-Arsène (Québec) G0L 2K0.", "G0L 2K0"),
    ],
)
def test_towns_are_found_by_region_postcode_or_residence_cue(text: str, place: str) -> None:
    assert covered(text, place)


@pytest.mark.parametrize(
    "text,organisation",
    [
        ("Was employed by Stanley Black & Decker until the stroke.", "Stanley Black & Decker"),
        ("Student insurance via Anthem Blue Cross, member since May.", "Anthem Blue Cross"),
        (
            "Graduate student at Colorado School of Mines, here for a consult.",
            "Colorado School of Mines",
        ),
        ("Claim filed with Sedgwick Claims Management Services, Inc. today.", "Services, Inc"),
    ],
)
def test_organisations_are_found_by_cue_and_head(text: str, organisation: str) -> None:
    assert covered(text, organisation)


def test_french_employers_and_insurers_after_their_cues() -> None:
    text = "M. Massonnet, retraité de la SNCF, ancien cariste chez Lidl France SNC."
    assert covered(text, "SNCF", "fr") and covered(text, "Lidl France SNC", "fr")


@pytest.mark.parametrize(
    "text,kept",
    [
        ("Known Parkinson's disease, on levodopa.", "Parkinson"),
        ("History of Crohn disease in remission.", "Crohn"),
        ("Positive Babinski sign on the left.", "Babinski"),
        ("Endoscopy showed Barrett oesophagus.", "Barrett"),
        ("Synovial cyst of popliteal space [Baker]", "Baker"),
        ("Enteritis due to Yersinia enterocolitica", "Yersinia"),
        ("Secondary malignant neoplasm of lymph nodes of axilla", "axilla"),
        ("Angina pectoris, unspecified", "Angina"),
        ("Blood Group: O positive, Coombs negative.", "Blood Group"),
        ("Specimen sent to the Blood Bank for crossmatch.", "Blood Bank"),
        ("Hepatomegaly and splenomegaly on exam.", "Hepatomegaly"),
        ("Metoprolol 25 mg and Eliquis 5 mg twice daily.", "Eliquis"),
    ],
)
def test_clinical_words_are_not_redacted(text: str, kept: str) -> None:
    redacted = " ".join(span for span, _ in found(text))
    assert kept not in redacted, found(text)


def test_a_named_person_beside_clinical_words_is_still_redacted() -> None:
    text = "Mr. Barrett has Barrett oesophagus; his daughter Linda White drove him."
    hits = [span for span, _ in found(text)]
    assert "Barrett" in hits and any("Linda" in hit for hit in hits)


def test_terminology_separates_vocabulary_from_eponyms() -> None:
    built = build(
        ["Barrett esophagus", "Abnormality of the rectum", "Progressive microcephaly"],
        ["Eliquis"],
    )
    assert built.is_term("Rectum") and built.is_term("Microcephaly")
    assert built.is_eponym("Barrett") and not built.is_term("Barrett")
    assert built.is_term("ELIQUIS") and not built.is_term("Linda")
    assert normalised("Oedema") == normalised("edema")


def test_the_shipped_terminologies_load_and_know_common_terms() -> None:
    known = terminology()
    assert len(known.vocabulary) > 5000 and len(known.terms) > 50000
    assert known.is_term("splenomegaly") and known.is_term("atorvastatin")
    assert not known.is_term("Dupont")


def test_regions_come_from_iso_3166_2() -> None:
    names = set(region_names())
    assert {"Minnesota", "Haute-Marne", "Quebec"} <= names


def test_split_is_deterministic_balanced_and_disjoint() -> None:
    notes = [GoldNote(f"n{i}", "", []) for i in range(9)]
    dev, held = split_half(notes, lambda n: n.id)
    again, _ = split_half(list(reversed(notes)), lambda n: n.id)
    assert [n.id for n in dev] == [n.id for n in again]
    assert len(dev) == 5 and len(held) == 4 and not {n.id for n in dev} & {n.id for n in held}


def test_safe_harbor_gold_drops_only_ages_of_89_or_less() -> None:
    text = "aged 58, mother 93"
    note = GoldNote("a", text, [Span(5, 7, "AGE"), Span(16, 18, "AGE"), Span(0, 4, "NAME")])
    assert sorted((s.start, s.type) for s in safe_harbor(note).gold) == [(0, "NAME"), (16, "AGE")]


def test_town_gazetteer_is_geonames_and_eponyms_after_de_are_kept() -> None:
    assert {"Hartford", "Quimper", "Fort Wayne"} <= town_names()
    text = "Suivi pour une maladie de Parkinson depuis 2019."
    assert "Parkinson" not in " ".join(span for span, _ in found(text, "fr"))


@pytest.mark.parametrize(
    "text,entity,span",
    [
        (
            "DISCHARGE SUMMARY - Cardiology\nSeen today.",
            "ORGANIZATION",
            "DISCHARGE SUMMARY - Cardiology",
        ),
        ("Labs: ESR 40, CRP 31.", "ORGANIZATION", "ESR"),
        ("Extranodal NK/T-cell lymphoma", "ORGANIZATION", "Extranodal NK/T"),
        ("Ranson 2 at admission.", "PERSON", "Ranson 2"),
        ("Lasilix 20 mg le matin.", "PERSON", "Lasilix"),
        ("Malignant neoplasm: Waldeyer ring", "PERSON", "Waldeyer"),
    ],
)
def test_clinical_shorthand_tagged_by_spacy_is_dropped(text: str, entity: str, span: str) -> None:
    start = text.index(span)
    kept, dropped = drop_false_positives(
        text, [RecognizerResult(entity, start, start + len(span), 0.85)], frozenset()
    )
    assert kept == [] and sum(dropped.values()) == 1


@pytest.mark.parametrize(
    "text,entity,span",
    [
        ("Employed by Hormel Foods since 2001.", "ORGANIZATION", "Hormel Foods"),
        ("Referred to CCRM Fertility Lone Tree.", "ORGANIZATION", "CCRM Fertility Lone Tree"),
        ("Marcus Bell called twice.", "PERSON", "Marcus Bell"),
        ("Seen today with Mr Wilson and his wife.", "PERSON", "Wilson"),
    ],
)
def test_organisations_and_people_tagged_by_spacy_are_kept(
    text: str, entity: str, span: str
) -> None:
    start = text.index(span)
    result = RecognizerResult(entity, start, start + len(span), 0.85)
    kept, _ = drop_false_positives(text, [result], frozenset())
    assert kept == [result]


@pytest.mark.parametrize(
    "text,entity,span",
    [
        # medical suffixes, French stems and chemical prefixes
        ("Candidiasis of the vulva.", "PERSON", "Candidiasis"),
        ("Biopsie réalisée hier.", "LOCATION", "Biopsie"),
        ("Hémoptysies récidivantes.", "LOCATION", "Hémoptysies"),
        ("Poisoning: Hydroxycarbamides", "PERSON", "Hydroxycarbamides"),
        # a capitalised word before a lowercase word with a medical suffix
        ("Nodular tenosynovitis of the wrist.", "PERSON", "Nodular"),
        # spaCy took the lowercase head or epithet into the span
        ("Erosive gastropathy, chronic.", "PERSON", "Erosive gastropathy"),
        ("Lichen planus, Keratosis pilaris noted.", "PERSON", "Keratosis pilaris"),
        (
            "Tuberculose hépatique avec Lymphadénopathies axillaires bilatérales.",
            "ORGANIZATION",
            "Lymphadénopathies axillaires bilatérales",
        ),
        # Latin adjectives after a genus-like word
        ("Acne rosacea and Hidradenitis suppurativa, Cutis verticis.", "PERSON", "Cutis"),
        # a French ward named by its specialty
        ("Transférée dans le Service de Pneumologie.", "ORGANIZATION", "Service de Pneumologie"),
        ("Dose: 3 UI le soir.", "LOCATION", "UI"),
    ],
)
def test_issue_17_clinical_words_are_dropped(text: str, entity: str, span: str) -> None:
    start = text.index(span)
    kept, dropped = drop_false_positives(
        text, [RecognizerResult(entity, start, start + len(span), 0.85)], frozenset()
    )
    assert kept == [] and sum(dropped.values()) == 1


@pytest.mark.parametrize(
    "text,entity,span",
    [
        ("Her neighbour Jérémie drove her in.", "PERSON", "Jérémie"),
        ("Moved here from Anchorage last year.", "LOCATION", "Anchorage"),
        ("Works for Microsoft Research as a tester.", "ORGANIZATION", "Microsoft Research"),
        ("Accompagnée de Marie Laure.", "PERSON", "Marie Laure"),
        ("Transférée au Service de Transport.", "ORGANIZATION", "Service de Transport"),
    ],
)
def test_issue_17_names_near_the_new_rules_are_kept(text: str, entity: str, span: str) -> None:
    start = text.index(span)
    result = RecognizerResult(entity, start, start + len(span), 0.85)
    kept, _ = drop_false_positives(text, [result], frozenset())
    assert kept == [result]


@pytest.mark.parametrize(
    "text,identifier",
    [
        ("Disability claim 5530-118 was denied.", "5530-118"),
        ("Prior authorization number 7741 2209 approved by the plan.", "7741 2209"),
        ("Call back about ticket # 408813.", "408813"),
        ("Please quote reference QX44190.", "QX44190"),
    ],
)
def test_identifiers_after_case_claim_and_number_sign_labels(text: str, identifier: str) -> None:
    assert (identifier, "ID") in found(text)


@pytest.mark.parametrize(
    "text,identifier",
    [
        ("Numéro de sinistre 77120455 transmis.", "77120455"),
        ("Réf. 604-2281 à rappeler.", "604-2281"),
    ],
)
def test_french_identifiers_after_reference_labels(text: str, identifier: str) -> None:
    assert (identifier, "ID") in found(text, "fr")


def test_labels_that_a_dose_or_a_count_follows_are_not_identifiers() -> None:
    assert found("Plan: metformin 1000 mg twice daily. Case 2 of 3, step #2.") == []


@pytest.mark.parametrize(
    "text,organisation",
    [
        ("She helps at the Northgate Food Pantry each week.", "Northgate Food Pantry"),
        ("Arrangements made with Kessler Funeral Home.", "Kessler Funeral Home"),
        ("Now housed at Birchwood Apartments.", "Birchwood Apartments"),
    ],
)
def test_community_services_and_homes_are_organisations(text: str, organisation: str) -> None:
    assert covered(text, organisation)


@pytest.mark.parametrize(
    "text,entity,span",
    [
        # a scale's eponym before its value
        ("Mobility: Tinetti 18/28 today.", "PERSON", "Tinetti"),
        ("Déficit : Rankin modifié 3.", "PERSON", "Rankin"),
        # a name that says it is a scale, whatever follows it
        ("GCS: Glasgow Coma Scale 15 on arrival.", "ORGANIZATION", "Glasgow Coma Scale"),
        ("Charlson Comorbidity Index of 4.", "PERSON", "Charlson Comorbidity Index"),
        # an eponym after "test de", "échelle de", known to no list
        ("Manœuvre faite, test de Vorlander négatif.", "PERSON", "Vorlander"),
        # a condition's qualifier, a term's site, "<anatomy> of X and Y"
        ("Quarrelosis, unspecified", "PERSON", "Quarrelosis"),
        ("Malignant neoplasm: Tonsil", "PERSON", "Tonsil"),
        ("Cyst of foramen of Brandel and Osk", "PERSON", "Osk"),
        # one unknown word alone on its line, tagged as a place
        ("Frambesia\n", "LOCATION", "Frambesia"),
    ],
)
def test_blind_2_clinical_contexts_are_dropped(text: str, entity: str, span: str) -> None:
    start = text.index(span)
    kept, dropped = drop_false_positives(
        text, [RecognizerResult(entity, start, start + len(span), 0.85)], frozenset()
    )
    assert kept == [] and sum(dropped.values()) == 1


@pytest.mark.parametrize(
    "text,entity,span",
    [
        ("Seen with Tinetti on 3 May, then home.", "PERSON", "Tinetti"),
        ("Mother: Ann Brook", "PERSON", "Ann Brook"),
        ("Lives with the mother of Ann and Jo", "PERSON", "Ann"),
        ("Moved from Springfield\n", "LOCATION", "Springfield"),
        ("Springfield\n", "LOCATION", "Springfield"),
    ],
)
def test_blind_2_names_and_places_near_the_new_rules_are_kept(
    text: str, entity: str, span: str
) -> None:
    start = text.index(span)
    result = RecognizerResult(entity, start, start + len(span), 0.85)
    kept, _ = drop_false_positives(text, [result], frozenset())
    assert kept == [result]


def test_disease_names_add_conditions_but_not_peoples_or_places() -> None:
    known = terminology()
    assert known.is_term("Syphilis") and known.is_term("congenital syphilis")
    assert not known.is_term("Indian") and not known.is_term("Maine")


def test_a_signature_initial_m_is_redacted_but_a_french_title_is_not() -> None:
    assert covered("Dressing changed.\nM. Tavares, RN", "M. Tavares")
    hits = [hit for hit, _ in found("Revu ce jour par M. Lebrun en consultation.", "fr")]
    assert hits and not any(hit.startswith("M.") for hit in hits)


@pytest.mark.parametrize(
    "text,phi,language",
    [
        ("Joindre l'IA au 418-555-0192 poste 2271 demain.", "418-555-0192 poste 2271", "fr"),
        ("Hospitalisé du 4 au 9 février 2024 pour pneumonie.", "4 au 9 février 2024", "fr"),
        ("Douleur lombaire depuis la mi-mars, sans fièvre.", "mi-mars", "fr"),
        ("Write to Ridgeway Clinic, PO Box 5521, Flagstaff, AZ 86001.", "PO Box 5521", "en"),
        ("Seen at home, 22 Larkhill Park, Coleraine, BT52 2QQ, today.", "22 Larkhill Park", "en"),
        ("Reg No. QMH/24/0311 on the card.", "QMH/24/0311", "en"),
    ],
)
def test_round_5_shapes_are_covered_end_to_end(text: str, phi: str, language: str) -> None:
    assert covered(text, phi, language)


@pytest.mark.parametrize(
    "text,kept,language",
    [
        ("No. of episodes 3; No 2 tablets; Room No 12; Box 3 checked.", "No 2 tablets", "en"),
        ("Room No 1204 is free.", "1204", "en"),
        ("Mid-dose review early morning; late onset of pain.", "early morning", "en"),
        ("BP 130, Pulse 88, BP 110 standing.", "BP 130", "en"),
        ("Héparine, 5000 Unités par jour.", "5000 Unités", "fr"),
        ("Prednisone du 3 au 5 mg par jour.", "3 au 5 mg", "fr"),
    ],
)
def test_round_5_traps_are_not_redacted(text: str, kept: str, language: str) -> None:
    model = DEID.spacy_model_fr if language == "fr" else DEID.spacy_model
    [spans], _ = detect_phi([text], model, language, DEID.score_threshold)
    start, end = text.index(kept), text.index(kept) + len(kept)
    assert not any(s.start < end and start < s.end for s in spans)
