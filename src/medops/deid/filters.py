"""Drop detections that are not identifiers, so de-identification keeps clinical meaning.

Measured on the demo reviews, stock presidio + spaCy small redacted drug names as
``[PERSON]`` ("I took [PERSON] for [DATE_TIME]") and durations such as "3 months" as
dates; run-together sentences ("DAYS.Af") became URLs. None of these identifies anyone
(HIPAA Safe Harbor lists calendar-date elements, not durations), and each destroys
signal a clinician or a model needs. Each rule is narrow and counted in the manifest.
On clinical notes (philter-lite's i2b2 notes) the same model tags section headers
("Neuro:"), abbreviations ("MG", "M.D.", "PO") and eponyms ("Parkinson's disease") as
names or places; those rules apply to spaCy's name-like entities only, never to medops'
pattern recognizers, so a titled or signed name is kept whatever its letters.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from presidio_analyzer import RecognizerResult

from medops.deid.places import is_known_place
from medops.deid.span_classifier import RECOGNIZER
from medops.deid.terminology import normalised, terminology, words

_MONTH = (
    r"\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b"
)
_CALENDAR = re.compile(rf"{_MONTH}|\b(?:19|20)\d{{2}}\b", re.IGNORECASE)
_NUMERIC_DATE = re.compile(r"\b(\d{1,4})([/.-])(\d{1,2})(?:\2(\d{2,4}))?\b")
# "CITY": medops' town gazetteer, a list match that eponyms and vocabulary can fool too
_NAME_LIKE = {"PERSON", "LOCATION", "ORGANIZATION", "NRP", "CITY"}
# Words spaCy's small models tag as PERSON/LOCATION/ORG that are never a name or a place
# on their own: clinical abbreviations, titles and salutations ("Cher confrère": Cher is
# also a French département), degrees and licences after a clinician's name ("MBChB, MMed").
# Compared casefolded, dots removed ("M.D." -> "md").
_NOT_NAMES = frozenset(
    re.findall(
        r"\S+",
        """
    md do rn np pa mg mcg ml po iv im sc sq qd bid tid qid qhs prn qod tab cap nd nt nad
    tablet tablets capsule capsules
    s3 s4 ra cv gi gu ent ed er icu ccu sdu pacu pcp jvd nka nkda qrs ecg ekg eeg emg cxr ct mri
    cbc bmp cmp lft tsh inr pt ptt bun cre wbc rbc hgb hct plt mcv mch mchc rdw bp hr rr
    sob doe cad chf copd cabg pci mi ros hpi pmh psh fh sh heent perrl perrla eomi rrr dm
    htn ckd esrd uti dvt pe gerd bph cva tia afib nsr lvef ef tte tee mibi adl adls flp rpr
    hiv hcv hbv iddm niddm rbbb lbbb ivcd avf na cl co2 glu asa nsaid ssri vs ms osa bmi
    atcd hta idm sca tdm irm nfs bpco avc ivg ecbu crp ui ipp nip nda
    dr drs doctor mr mrs ms miss mx prof pr docteur professeur mme mlle madame monsieur
    mademoiselle dear cher chère
    mum mom dad maman papa mon tue tues wed thu thur thurs fri sat sun
    ppsn nhi hpcsa avs niss nam ramq ohip h&c nhs mrn
    mbbs mbchb mbbch mmed fcps mrcp mrcs frcp frcs frcpc fracp facp facs mrcgp frcog mph msc
    bsc dch dgo dnb mch phd pharmd dds dmd lcsw lpc lcadc aprn fnp crna
    """,
    )
)
# Disease eponyms: a name followed by "disease", "syndrome", ... (or "maladie de X")
# names a condition, not a person.
_EPONYMS = frozenset(
    re.findall(
        r"\S+",
        """
    parkinson alzheimer crohn hodgkin cushing addison graves basedow hashimoto down
    asperger bell guillain barré barre kaposi raynaud sjögren sjogren wilson huntington
    babinski glasgow apgar murphy homans lasègue lasegue marfan ménière meniere paget
    tourette wernicke korsakoff creutzfeldt jakob kawasaki lyme horton behçet behcet
    charcot dupuytren osgood schlatter reiter still whipple duchenne becker epstein barr
    stevens johnson wolff white turner klinefelter fallot burkitt ewing hirschsprung
    foley allen erb moro kerley mobitz reed sternberg
    """,
    )
)
# Suffixes of drug classes and procedures (INN stems); a one-word name-like span ending
# so is a drug or a procedure. Chosen to spare first names ("-ine": Caroline is not here).
_MEDICAL_SUFFIX = re.compile(
    r"(?:plasty|ectomy|otomy|ostomy|itis|osis|emia|algia|olol|pril|sartan|statin|azole"
    r"|mycin|cillin|floxacin|tidine|prazole|dipine|parin|mab|nib|sone|oxetine|azepam"
    r"|triptan|gliptin|formin|oma|pathy|uria|megaly|plasia|phyma|trophy|rrh(?:o)?ea|clasia"
    r"|ectasia|philia|phobia|plegia|cardia|cephaly|lysis|malacia|iasis|phrenia|ology|iatry"
    r"|iatrics"
    # French stems, singular or plural: "Biopsie", "Hémoptysies", "Adénopathies"
    r"|(?:logie|iatrie|pathie|opsie|scopie|graphie|ectomie|otomie|plastie|th[ée]nie|ptysie"
    r"|(?:glyc|kali|natr|calc|ur|an|leuc|lip|ox)[ée]mie|algie)s?)$"
    # chemical prefixes of drug and toxin classes ("Deoxybarbiturates"), long words only
    r"|^(?:deoxy|dihydro|hydroxy|nitro|amino|chloro|fluoro|bromo|methyl|ethyl|phenyl|sulfa"
    r"|sulpha|cepha|cefa|barbitu)\w{4,}$"
)
_VITAMIN_OR_DOSE = re.compile(
    r"^vit(?:amine?|\.)(?:[ \t]|$)|\d[\d,.]*[ \t]*(?:mg|mcg|µg|g|ml|iu|ui|units?|mmol/l)\b"
)
_EPONYM_AFTER = re.compile(
    r"^(?:'s|’s|s')?[ \t-]*(?:disease|syndrome|signs?|tests?|maneuver|manoeuvre|palsy|lymphoma"
    r"|sarcoma|scores?|scales?|phenomenon|disorder|reflex|catheter|negative|positive|lines?"
    r"|type|block|cells?|\w+(?:itis|osis|oma|pathy))\b",
    re.IGNORECASE,
)
_EPONYM_BEFORE = re.compile(
    r"\b(?:maladie|syndrome|signe|score|[ée]chelle|test|man[oœ]euvre|lymphome|sarcome|"
    r"t[ée]tralogie|paralysie|sonde|thyro[ïi]dite|classification)[ \t]+d[e'’][ \t]*$",
    re.IGNORECASE,
)
# words the terminology holds that say nothing medical: "Mr Wilson and his wife" is a person
_FUNCTION_WORDS = frozenset(
    re.findall(
        r"\S+",
        """
    and or but nor of the a an with without from for to in on at by as his her their its
    was were is are has had have who which that this these those than then also after before
    et ou de du des le la les un une avec sans pour sur dans par qui que est sont
    """,
    )
)
# heads only a condition takes: "Nelson syndrome", "Kawasaki disease", "Down 6 syndrome"
_CONDITION_AFTER = re.compile(
    r"^(?:'s|’s)?[ \t-]*(?:\d+[ \t]+)?(?:disease|syndrome|palsy|phenomenon|anomaly"
    r"|malformation)\b",
    re.IGNORECASE,
)
# a scale's value after its eponym or abbreviation: "Rankin 3/6", "Katz ADL 5/6", "Rankin
# modifié 2"
_SCORE_AFTER = re.compile(
    r"[ \t]+(?:[A-Z]{2,6}[ \t]+)?(?:\d{1,3}[ \t]*/[ \t]*\d{1,3}(?![\d/])"
    r"|(?:modifi[ée]e?|modified|revised|r[ée]vis[ée]e?)[ \t]+\d)"
)
# qualifiers that only follow a condition: "Yaws, unspecified", "Ricketts NOS"
_QUALIFIER_AFTER = re.compile(
    r"[ \t]*,?[ \t]*(?:unspecified|not[ \t]+elsewhere[ \t]+classified|NOS|NEC"
    r"|sans[ \t]+pr[ée]cision|non[ \t]+pr[ée]cis[ée]e?)\b"
)
# "<medical term>: X" opening a line ("Malignant neoplasm: Vallecula") and "<anatomy> of X
# and Y" ("foramina of Magendie and Luschka"): the site or the eponym of a term
_TERM_LABEL = re.compile(r"^[ \t]*([^\W\d_][^\n:]{2,60}?)[ \t]*:[ \t]*$")
_OF_BEFORE = re.compile(
    r"(?:^|[ \t(])([^\W\d_]+)[ \t]+of[ \t]+(?:the[ \t]+)?(?:[A-Z][\w'’-]*[ \t]+(?:and|or)[ \t]+)?$"
)
# relatives and roles whose name may follow "of": "mother of Ann", "sister of Ann"
_NOT_TERM_LABEL = re.compile(
    r"(?i:.*\b(?:mother|father|sister|brother|son|daughter|wife|husband|contact|family|friend"
    r"|parent|child|guardian|patient|name|nurse|doctor|physician|m[èe]re|p[èe]re|s[œo]e?ur"
    r"|fr[èe]re|fils|fille|contact|nom))\b"
)
_FULL_DATE = re.compile(
    r"\d{1,2}([./-])\d{1,2}\1(?:19|20)\d{2}|(?:19|20)\d{2}([./-])\d{1,2}\2\d{1,2}"
)
# a species epithet after a genus ("Escherichia coli", "Brucella canis"), not French
# function words ("Marie puis", "Jean aussi")
_EPITHET = re.compile(r"[ \t]+([a-z]{3,}(?:i|ae|um|is|ica|oides|ensis|osa|unda|alis|aris))\b")
_NOT_EPITHET = re.compile(r"(?:ui|ci|si|di|ais|uis|ris|vis|mis|dis)$")
# a dose right after a name-like word makes it a drug: "Lasilix 20 mg", "Eliquis 5 mg"
_DOSE_AFTER = re.compile(
    r"[ \t]+\d[\d,.]*[ \t]*(?:mg|mcg|µg|g|ml|iu|ui|units?|mmol|meq|gouttes|drops|puffs?)\b",
    re.IGNORECASE,
)
# heads that also name clinical things (see ``is_clinical_department``)
_AMBIGUOUS_HEAD = re.compile(
    r"[ \t]+(?:Group|Bank|Lab|Laboratory|Laboratories|Health|Systems|Services?|Network"
    r"|Union|Society|Board|Physiotherapy|Physio|Dental|Podiatry)\b"
)
# a ward and its specialty, one word: "Service de Cardiologie", "Pôle d'Urologie"
_WARD = re.compile(
    r"(?i:service|unit[ée]|p[ôo]le|d[ée]partement)[ \t]+(?:de[ \t]+|d['’][ \t]*)([^\W\d_]+)"
)
# what a drug follows: "sous Modopar", "started on Brilinta", "switched to Clavulin"
_TREATMENT_BEFORE = re.compile(
    r"(?:\b(?i:sous|started[ \t]+on|switched[ \t]+to|relais[ \t]+par|relay[ée]e?[ \t]+par))[ \t]+$"
)
_LOWER_NEXT = re.compile(r"[ \t]+([a-zß-öø-ÿ][\w'’-]*)")
_ONE_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
_LOWER_WORD_AFTER = re.compile(r"[ \t]+(?:[a-zß-öø-ÿ]|d['’]|l['’])")
_TOKEN_SPLIT = re.compile(r"[\s/,;()]+")
_EDGE_PUNCT = ".,;:!?'\"()[]{}*-"


def _tokens(text: str) -> list[str]:
    return [t for t in (part.strip(_EDGE_PUNCT) for part in _TOKEN_SPLIT.split(text)) if t]


def vocabulary(terms: Iterable[str]) -> frozenset[str]:
    """Casefolded terms and their tokens: 'Ortho Tri-Cyclen Lo' keeps 'tri-cyclen' too."""
    words: set[str] = set()
    for term in terms:
        folded = term.casefold().strip()
        if not folded:
            continue
        words.add(folded)
        words.update(
            t.strip(_EDGE_PUNCT) for t in _TOKEN_SPLIT.split(folded) if t.strip(_EDGE_PUNCT)
        )
    return frozenset(words)


def _plausible_numeric_date(match: re.Match[str]) -> bool:
    first, sep, second, third = match.groups()
    a, b = int(first), int(second)
    if len(first) == 4:
        return 1 <= b <= 12
    if sep == "." and third is None:  # "7.5" is a dose, not a date
        return False
    if sep == "-" and third is None:  # "3-6 months" is a range
        return False
    return 1 <= a <= 31 and 1 <= b <= 31 and (a <= 12 or b <= 12)


def is_calendar_date(span: str) -> bool:
    """A month name, a numeric date (3/14/62, 2012-03-14) or a year; not '3 months'.

    Numeric forms need a plausible month and day, so a blood pressure ("142/74") or a
    dose ("7.5") tagged as a date by spaCy is not one.
    """
    if _CALENDAR.search(span):
        return True
    return any(_plausible_numeric_date(m) for m in _NUMERIC_DATE.finditer(span))


_CODE = re.compile(r"[\w-]*\d[\w-]*|[IVX]+a?")  # a digit in it, or a Roman numeral ("IXa")
_CODE_JOINERS = frozenset({"and", "et", "&", "or", "ou"})
# one word whose last part is lowercase: a compound modifier ("APP-related", "GH-secreting",
# "D-resistant", "Behcet-like"); names and towns capitalise their parts ("Aix-les-Bains")
_MODIFIER = re.compile(r"[^\s-]+(?:-[^\s-]+)*-[a-zß-öø-ÿ]{3,}")


def is_not_a_name(span: str) -> bool:
    """One letter, a clinical abbreviation, title or salutation ("MG", "M.D.", "Cher"), or
    one or two words with a digit: a code ("B12", "HbA1c", "46,XX karyotype") or a value
    ("Ranson 2", "Hb 9.8", "VS 88"); a longer name may hold a number ("Route 66 Diner");
    codes joined by "and" ("CD34 and CD19"); a compound modifier ("APP-related")."""
    word = span.replace(".", "").strip().casefold()
    coded = len(word.split()) <= 2 and any(ch.isdigit() for ch in word)
    modifier = _MODIFIER.fullmatch(span.strip()) is not None
    return len(word) <= 1 or word in _NOT_NAMES or coded or modifier or _only_codes(span)


def _only_codes(span: str) -> bool:
    """Codes joined by "and" or a comma: "CD34 and CD19", "IXa and X" (clotting factors)."""
    parts = [p for p in re.split(r"[\s,]+", span.strip()) if p.casefold() not in _CODE_JOINERS]
    return bool(parts) and all(_CODE.fullmatch(p) for p in parts)


def is_medical_term(span: str) -> bool:
    """One word with a drug or procedure suffix ("Atenolol", "Angioplasty"), a vitamin, or a
    dose ("Vitamin D3 2000 IU", "adalimumab 40 mg")."""
    word = span.strip().casefold()
    if _VITAMIN_OR_DOSE.search(word):
        return True
    return word.isalpha() and _MEDICAL_SUFFIX.search(word) is not None


def is_section_header(text: str, start: int, end: int) -> bool:
    """The span opens its line and a colon follows: "Neuro: alert", "Pulmonary: clear"."""
    line_start = text.rfind("\n", 0, start) + 1
    return not text[line_start:start].strip() and text[end : end + 20].lstrip(" \t").startswith(":")


def is_line_initial_word(text: str, start: int, end: int) -> bool:
    """One word opening its line and followed by a lowercase word: a capitalised common
    word ("Kaliémie à 6,1", "Comparaison avec", "Scanner thoracique"). Applied to places
    only: a first name opening a line ("Linda called back") must stay redacted."""
    line_start = text.rfind("\n", 0, start) + 1
    if text[line_start:start].strip() or not _ONE_WORD.fullmatch(text[start:end]):
        return False
    return _LOWER_WORD_AFTER.match(text, end) is not None


def is_lone_unknown_place(text: str, start: int, end: int) -> bool:
    """One word alone on its line, or before a comma and lowercase words only ("Beriberi",
    "Gangosa, unspecified"), that no gazetteer knows as a town, region or country: a
    heading or a term of a list, not an address line (its town is in GeoNames)."""
    span = text[start:end]
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    rest = text[end : line_end if line_end >= 0 else len(text)]
    alone = not text[line_start:start].strip() and (
        not rest.strip(" \t.") or re.fullmatch(r",[ \t]*[a-z][a-z ,]*\.?[ \t]*", rest) is not None
    )
    return alone and _ONE_WORD.fullmatch(span) is not None and not is_known_place(span)


def is_eponym(text: str, start: int, end: int) -> bool:
    """It starts with a disease eponym and the words around make it a condition.

    "Parkinson's disease", "maladie de Crohn (ancienne)", "score de Glasgow", "Barrett
    oesophagus" (an eponym of the terminology before one of its words); a patient called
    Parkinson is caught by the title, field and signature recognizers.
    """
    tokens = [t for t in re.split(r"[\s'’-]+", text[start:end].casefold()) if t]
    if not tokens:
        return False
    if _CONDITION_AFTER.match(text[end : end + 30]) or _QUALIFIER_AFTER.match(text, end):
        return True
    # "test de Lachman", "échelle de Pigassou": the head before names the eponym, known or not
    if len(tokens) <= 2 and _EPONYM_BEFORE.search(text[max(0, start - 30) : start]):
        return True
    known = terminology()
    if any(t in _EPONYMS or known.is_eponym(t) for t in (tokens[0], tokens[-1])):
        before = text[max(0, start - 30) : start]
        after = text[end : end + 30]
        following = words(after[:20])
        return bool(
            _EPONYM_AFTER.match(after)
            or _EPONYM_BEFORE.search(before)
            or (
                bool(following)
                and following[0].casefold() not in _FUNCTION_WORDS
                and normalised(following[0]) in known.heads
            )
        )
    return False


_SCALE_WORDS = {"scale", "score", "index", "échelle"}


def is_scale(text: str, start: int, end: int) -> bool:
    """One or two words before a score's value: "Rankin 3/6", "Katz ADL 5/6", "Rankin
    modifié 2" name a clinical scale; a person's name is seldom followed by a ratio. A
    name that says it is one is one ("Glasgow Coma Scale", "Charlson Comorbidity Index"),
    with its value too ("Glasgow Coma Scale 15")."""
    words = text[start:end].split()
    if words and words[-1].isdigit():
        words = words[:-1]
    if words and words[-1].casefold() in _SCALE_WORDS:
        return True
    return len(words) <= 2 and _SCORE_AFTER.match(text, end) is not None


def is_term_site(text: str, start: int, end: int) -> bool:
    """A word after a medical term and a colon opening the line ("Malignant neoplasm:
    Vallecula", "Toxic effect: Ciguatera"), or after "<medical word> of" ("foramina of
    Magendie and Luschka"); not after a relative or a field label ("Mother: Ann")."""
    if len(text[start:end].split()) > 2:
        return False
    line_start = text.rfind("\n", 0, start) + 1
    before = text[line_start:start]
    known = terminology()
    label = _TERM_LABEL.match(before)
    if label and len(words(label.group(1))) >= 2 and not _NOT_TERM_LABEL.match(label.group(1)):
        return known.is_term(label.group(1))
    of = _OF_BEFORE.search(before)
    return bool(
        of
        and not _NOT_TERM_LABEL.match(of.group(1))
        and of.group(1)[0].islower()
        and normalised(of.group(1)) in known.vocabulary
    )


def is_bracketed_eponym(text: str, start: int, end: int) -> bool:
    """A name in brackets after a medical word: "popliteal cyst [Baker]", "necrolysis
    [Lyell]", ICD-10's way of giving a condition's eponym; or a known eponym in brackets
    ("leg raise (Lasegue)")."""
    before = text[max(0, start - 40) : start]
    opening = re.search(r"(\w+)[ \t]*[\[(]$", before)
    closes = text[end : end + 1] in ")]" or text[end : end + 30].startswith("-")
    word = opening.group(1) if opening else ""
    known = terminology()
    eponym = text[start:end].casefold() in _EPONYMS or known.is_eponym(text[start:end])
    return closes and (
        (bool(opening) and eponym) or normalised(word) in known.vocabulary or is_medical_term(word)
    )


def is_term_modifier(text: str, start: int, end: int) -> bool:
    """One word before a lowercase word that ends terminology terms or has a medical
    suffix: "Maltworker lung", "Waldeyer ring", "Oculoglandular tularaemia" name
    conditions and anatomy."""
    following = _LOWER_NEXT.match(text, end)
    return (
        _ONE_WORD.fullmatch(text[start:end]) is not None
        and following is not None
        and following.group(1) not in _FUNCTION_WORDS
        and (
            normalised(following.group(1)) in terminology().heads
            or is_medical_term(following.group(1))
        )
    )


def is_term_with_tail(text: str, start: int, end: int) -> bool:
    """A capitalised word, then lowercase words only, where spaCy took a term's head into
    the span: "Gouty arthropathy", "Chondromalacia patellae", "Adénopathies cervicales";
    the first word is judged as a medical term, a term modifier or a genus, as it would be
    had the span stopped after it. A name's last word is capitalised ("Anna Smith", "Jean
    de La Fontaine")."""
    parts = list(re.finditer(r"\S+", text[start:end]))
    if len(parts) < 2 or not all(part[0][0].islower() for part in parts[1:]):
        return False
    first_end = start + parts[0].end()
    return (
        is_medical_term(parts[0][0])
        or is_term_modifier(text, start, first_end)
        or is_genus(text, start, first_end)
    )


def is_genus(text: str, start: int, end: int) -> bool:
    """One capitalised word before a species epithet: "Yersinia enterocolitica"."""
    epithet = _EPITHET.match(text, end)
    return (
        len(text[start:end].split()) <= 2
        and epithet is not None
        and not _NOT_EPITHET.search(epithet.group(1))
    )


def is_unlikely_organisation(text: str, start: int, end: int, learned: bool = False) -> bool:
    """spaCy's organisations that are clinical shorthand, not employers or clinics: one
    word ("ESR", "Vaccines", "Neurologie"), a ratio ("NK/T") or a whole line (a header:
    "DISCHARGE SUMMARY - Cardiology"), or two words in capitals opening it ("COMPTE RENDU": the
    medops patterns find "MERCY HOSPITAL" by its head)."""
    span = text[start:end]
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    whole_line = not text[line_start:start].strip() and not text[
        end : line_end if line_end >= 0 else len(text)
    ].strip(" \t.:")
    opening = span.split()[:2]  # "DISCHARGE SUMMARY", "COMPTE RENDU"; not "CCRM Fertility"
    header = len(opening) == 2 and all(w.isupper() and len(w) >= 4 for w in opening)
    single = len(span.split()) == 1
    if learned:  # one word or a heading is often the organisation itself ("PGHM")
        single = whole_line = False
    return single or "/" in span or whole_line or header or is_clinical_department(span)


def is_shorthand(span: str) -> bool:
    """Clinical abbreviations, with medical words at most: "PO QD", "MG BID", "TABLET PO
    QD", "ED"; a name has at least one word that is neither."""
    tokens = [t.replace(".", "").casefold() for t in _tokens(span)]
    vocabulary = terminology().vocabulary
    return (
        bool(tokens)
        and any(t in _NOT_NAMES for t in tokens)
        and all(t in _NOT_NAMES or normalised(t) in vocabulary for t in tokens)
    )


def is_clinical_department(span: str) -> bool:
    """An ambiguous head after medical words only: "Blood Bank", "Blood Group", "Sleep Lab",
    "Mental Health" name a clinical thing, "Hormel Foods" or "Mercy Health" do not; nor
    does a French ward named by its specialty ("Service de Cardiologie", "Unité de
    gériatrie"), which no one outside the hospital can be traced by."""
    ward = _WARD.fullmatch(span.strip())
    if ward is not None:
        return is_medical_term(ward.group(1))
    head = _AMBIGUOUS_HEAD.search(span)
    return head is not None and terminology().is_term(span[: head.start()])


def is_dosed(text: str, end: int) -> bool:
    """A dose follows: "Lasilix 20 mg", "Kardégic 75 mg" are drugs, whatever their name."""
    return _DOSE_AFTER.match(text, end) is not None


def is_treatment(text: str, start: int, end: int) -> bool:
    """One word after a treatment cue: "sous Ventoline", "started on Janumet" name a drug;
    a person is not put "under" ("sous") anyone in a note, a clinician has a title."""
    return _ONE_WORD.fullmatch(text[start:end]) is not None and bool(
        _TREATMENT_BEFORE.search(text, max(0, start - 20), start)
    )


def is_uncapitalised(span: str) -> bool:
    """No capital letter: "van", "mosquito", "plantaris" are words, not names or places."""
    return not any(ch.isupper() for ch in span)


def is_plausible_phone(span: str) -> bool:
    """7+ digits and not a full numeric date ("02.25.2016" read as a phone number)."""
    return sum(c.isdigit() for c in span) >= 7 and not _FULL_DATE.fullmatch(span.strip())


def is_known_term(span: str, known: frozenset[str]) -> bool:
    tokens = _tokens(span.casefold())
    return bool(tokens) and all(t in known for t in tokens)


def is_plausible_url(span: str) -> bool:
    """A scheme or www., or a lowercase top-level domain after a name with letters and no
    '..' (not 'DAYS.Af', not '1.mg')."""
    lowered = span.lower()
    if "://" in lowered or lowered.startswith("www."):
        return True
    host, _, suffix = span.rstrip("/").rpartition(".")
    return ".." not in span and suffix.islower() and any(ch.isalpha() for ch in host)


def _line_parts(text: str, results: Sequence[RecognizerResult]) -> list[RecognizerResult]:
    """Name-like results split at line breaks (blank parts go); the others unchanged."""
    parts = []
    for result in results:
        if result.entity_type not in _NAME_LIKE or "\n" not in text[result.start : result.end]:
            parts.append(result)
            continue
        for line in re.finditer(r"[^\n]+", text[result.start : result.end]):
            start = result.start + line.start() + len(line[0]) - len(line[0].lstrip())
            end = result.start + line.end() - (len(line[0]) - len(line[0].rstrip()))
            if end > start:
                parts.append(
                    RecognizerResult(
                        result.entity_type,
                        start,
                        end,
                        result.score,
                        recognition_metadata=result.recognition_metadata,
                    )
                )
    return parts


def _learned(result: RecognizerResult) -> bool:
    metadata = result.recognition_metadata or {}
    return metadata.get(RecognizerResult.RECOGNIZER_NAME_KEY) == RECOGNIZER


def drop_false_positives(
    text: str, results: Sequence[RecognizerResult], known: frozenset[str]
) -> tuple[list[RecognizerResult], Counter[str]]:
    """Detections to redact, and counts of those dropped per rule (never the spans).

    A name or place spaCy tagged across a line break ("D.\nElle", "MÉDICAL\nJe soussigné")
    is judged line by line: each line's part is kept or dropped on its own, so a name
    wrapped over two lines stays redacted while a header glued to it does not.
    """
    kept: list[RecognizerResult] = []
    dropped: Counter[str] = Counter()
    for result in _line_parts(text, results):
        span = text[result.start : result.end]
        name_like = result.entity_type in _NAME_LIKE
        if name_like and known and is_known_term(span, known):
            dropped["known_term"] += 1
        elif name_like and (is_not_a_name(span) or is_shorthand(span)):
            dropped["not_a_name"] += 1
        elif name_like and (
            is_medical_term(span)
            or is_dosed(text, result.end)
            or is_treatment(text, result.start, result.end)
        ):
            dropped["medical_term"] += 1
        elif name_like and is_section_header(text, result.start, result.end):
            dropped["section_header"] += 1
        elif name_like and (
            is_eponym(text, result.start, result.end)
            or is_bracketed_eponym(text, result.start, result.end)
        ):
            dropped["eponym"] += 1
        elif name_like and is_genus(text, result.start, result.end):
            dropped["genus"] += 1
        elif name_like and (
            is_scale(text, result.start, result.end) or is_term_site(text, result.start, result.end)
        ):
            dropped["scale_or_term_site"] += 1
        elif name_like and (
            is_term_modifier(text, result.start, result.end)
            or is_term_with_tail(text, result.start, result.end)
        ):
            dropped["term_modifier"] += 1
        elif name_like and is_uncapitalised(span):
            dropped["uncapitalised"] += 1
        elif name_like and terminology().is_term(span):
            dropped["medical_vocabulary"] += 1
        elif result.entity_type == "ORGANIZATION" and is_unlikely_organisation(
            text, result.start, result.end, learned=_learned(result)
        ):
            dropped["unlikely_organisation"] += 1
        elif result.entity_type == "LOCATION" and is_line_initial_word(
            text, result.start, result.end
        ):
            dropped["line_initial_common_word"] += 1
        elif result.entity_type == "LOCATION" and is_lone_unknown_place(
            text, result.start, result.end
        ):
            dropped["lone_unknown_place"] += 1
        elif result.entity_type == "PHONE_NUMBER" and not is_plausible_phone(span):
            dropped["not_a_phone"] += 1
        elif result.entity_type == "DATE_TIME" and not is_calendar_date(span):
            dropped["not_a_date"] += 1
        elif result.entity_type == "URL" and not is_plausible_url(span):
            dropped["not_a_url"] += 1
        else:
            kept.append(result)
    return kept, dropped
