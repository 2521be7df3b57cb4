"""medops' own PHI recognizers: the identifiers clinical notes carry that presidio misses.

Measured on philter-lite's i2b2 notes (bench/deid_recall.py), stock presidio with the
small spaCy model misses header fields ("MRN: 8249813"), signatures ("FILBERT BRIGHT,
M.D."), record and job numbers, pager numbers and m/yy dates, and has no French IDs,
phones, dates or addresses at all. Each recognizer here is a case-sensitive regex (the
capital letter of a name is the signal; presidio's PatternRecognizer matches with
IGNORECASE), reports only the identifier itself (``phi`` group: the name after "Dr.",
not the title) and, where the identifier has a checksum, validates it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from presidio_analyzer import LocalRecognizer, RecognizerResult

from medops.deid.filters import is_clinical_department, is_not_a_name, is_shorthand
from medops.deid.places import country_regex, is_town, region_regex
from medops.deid.terminology import terminology

Scorer = Callable[[str, float], float | None]

_UP = "A-ZÀ-ÖØ-Þ"
_LO = "a-zß-öø-ÿ"
_CAP = rf"[{_UP}][{_LO}]+(?:[{_UP}][{_LO}]+|[{_UP}]{{2,}})?"  # Smith, McDonald, MacNEIL
_CAPS = rf"[{_UP}]{{2,}}"  # SMITH
_WORD = rf"(?:[{_UP}]['’])?(?:{_CAP}|{_CAPS})(?:[-'’](?:{_CAP}|{_CAPS}))*"  # Jean-Pierre, O'Neil
_PARTICLE = r"(?:de|du|des|la|le|van|von|der|den|di|da|del|della|dos|ben|bin|al|el|Ó|N[íi]|U[íi])"
# Irish surnames open with a one-letter particle: "Ó SÚILLEABHÁIN", "Ní Bhriain"
_LEAD_PARTICLE = r"(?:Ó|Ní|Uí|NÍ|UÍ)[ \t]+"
_INITIAL = rf"[{_UP}]\.|[{_UP}](?=[ \t]+[{_UP}]|[ \t]*$)"
# Up to four name tokens on one line: "Gilbert P. Perez", "Jean-Pierre de la Tour".
_NAME = (
    # "H. van der Merwe", "Th. Dewulf"
    rf"(?<![\w'’-])(?:[{_UP}][a-z]?\.[ \t]*(?:{_PARTICLE}[ \t]+){{0,2}})?"
    rf"(?:{_LEAD_PARTICLE})?{_WORD}"
    # a nickname in quotes or brackets between the names: 'Ezra "Zed" Pollard', "Ann (Nan) Roe";
    # a wider gap is the next field ("Jo Ruiz   Nurse: Al Day")
    rf"(?:[ \t]{{1,2}}(?:{_PARTICLE}[ \t]+){{0,2}}(?:{_WORD}|{_INITIAL}|[\"“]{_CAP}[\"”]"
    rf"|\({_CAP}\))){{0,3}}"
)
_NAME_LIST = rf"{_NAME}(?:[ \t]*,[ \t]*{_NAME})?"  # "Villegas, Yosef"

_TITLE = (
    r"(?:Dr|Drs|Dre|Dres|Doctor|Prof|Mr|Mrs|Ms|Miss|Mx|Pr|Docteur|Professeur|Mme|Mlle|Madame"
    r"|Monsieur|Mademoiselle)\.?|(?:DR|MR|MRS|MS|PROF|PR|MME|M)\."
)
# Words after which a capitalised word is a person: "his daughter Linda", "Pt Marcus
# Bell", "sa sœur Samira". Not "Patient Name:" (a field label, see the lookahead).
_RELATION = (
    r"pt|patient|patiente|husband|wife|son|daughter|mother|father|brother|sister|partner"
    r"|spouse|nephew|niece|grandson|granddaughter|grandmother|grandfather|aunt|uncle|cousin"
    r"|friend|caregiver|carer|neighbou?r|fianc[ée]e?|boyfriend|girlfriend"
    r"|fils|fille|[ée]pouse|[ée]poux|mari|conjointe?|compagne|compagnon|ami|amie"
    r"|fr[èe]re|s[œo]e?ur|neveu|ni[èe]ce|m[èe]re|p[èe]re|petit-fils|petite-fille|tante|oncle"
    r"|grand-m[èe]re|grand-p[èe]re|belle-fille|beau-fils|belle-m[èe]re|beau-p[èe]re|gendre"
    r"|aidante?|voisine?"
    # a decision maker named after "is": "her health care proxy is Ann", "HCP: Ann"
    r"|(?:HCP|POA|health[ \t]*care[ \t]+proxy|proxy|surrogate|tut(?:eur|rice)|curat(?:eur|rice)"
    r"|mandataire)(?:[ \t]+(?:is|est))?"
)
_NOT_AFTER_RELATION = r"(?:Name|Names|ID|Information|Portal|Number|Nom|Num[ée]ro)\b"
_CREDENTIAL = (
    r"M\.D\.|MD|D\.O\.|DO|R\.N\.|RN|N\.P\.|NP|P\.A\.|PA-C|Ph\.D\.|PhD|MBBS|Pharm\.?D|DDS"
    r"|DMD|FACP|FRCPC?"
)
_NAME_FIELD = (
    r"Name|Patient|Patient[ \t]+name|Pt|Re|PCP|Attending|Attending[ \t]+physician"
    r"|(?:Submitting|Ordering|Requesting|Consulting)[ \t]+(?:physician|provider|clinician)"
    r"|Referring(?:[ \t]+physician)?|Primary[ \t]+care(?:[ \t]+physician)?|Physician"
    r"|Provider|Surgeon|Resident|Intern|Fellow|Nurse|Author|RN|LPN|CNA|Scribe|Tech"
    r"|Technician|Technologist|Therapist|Pharmacist|Midwife|Anesthesiologist|Anesthetist"
    r"|Operator|Sage-femme|IDE|IBODE|IADE|Infirmi[èe]re?|Anesth[ée]siste|Op[ée]rateur"
    r"|Aide-soignante?|Kin[ée]sith[ée]rapeute|Pu[ée]ricultrice|Pharmacien(?:ne)?"
    r"|Next[ \t]+of[ \t]+kin|NOK"
    # who a social, occupational or forensic note is about: "Client:", "Salarié :"
    r"|Client|Cliente|Worker|Employee|Subject|R[ée]sidente?|Salari[ée]e?|Usager"
    r"|Usag[èe]re|B[ée]n[ée]ficiaire|Consultante?|Student|Pupil|[ÉE]l[èe]ve"
    r"|Emergency[ \t]+contact|(?:Electronically[ \t]+)?signed[ \t]+by|Dictated[ \t]+by"
    r"|Copy[ \t]+to|Child|Parent|Guardian|Mother|Father|Enfant|Tuteur|Tutrice"
    r"|Nom|Pr[ée]nom|Nom[ \t]+de[ \t]+naissance|Nom[ \t]+d'usage"
    r"|Nom[ \t]+marital|Patiente|M[ée]decin(?:[ \t]+(?:traitant|r[ée]f[ée]rent))?"
    r"|Interne|Externe|Chef[ \t]+de[ \t]+clinique|R[ée]dig[ée][ \t]+par|Sign[ée][ \t]+par"
    r"|Dict[ée][ \t]+par|Copie[ \t]+[àa]|Personne[ \t]+(?:[àa][ \t]+pr[ée]venir|de[ \t]+confiance)"
)
_RECORD_FIELD = (
    r"MRN|MR|Med(?:ical)?[ \t]*Rec(?:ord)?|Record|Unit|Patient[ \t]*ID|IPP|NIP|NDA"
    r"|Dossier|N°[ \t]*(?:de[ \t]+)?dossier|Num[ée]ro[ \t]+de[ \t]+dossier|Account|Acct"
    r"|Hospital[ \t]*(?:No|Number|#)|Insurance|Policy|Member[ \t]*ID|Mutuelle"
    r"|Accession|Acc|Specimen|Serial|S/?N|Lot|Passport|Licen[cs]e|DEA|NPI|IBAN|RIB|BIC"
    r"|RPPS|ADELI|FINESS|S[ée]jour|Passage|Examen|Adh[ée]rent|Bo[îi]tier|Contrat"
    # case, claim and request numbers of payers and services; not "Plan"/"Order", which
    # a dose follows ("Plan: 1000 mg")
    r"|Claim|Case|R[ée]f(?:[ée]rence|\.)?|Confirmation|Authori[sz]ation|Auth|Tracking|Invoice"
    r"|Ticket|Voucher|Certificate|Permit|Registration|Badge|Employee|Student|Beneficiary"
    r"|Subscriber|Enrol(?:l)?ment|Encounter|Requisition|Req|Booking"
    # a council's registration: "PMDC Reg. 48211-P", "Reg. No. U-1452"
    r"|Reg(?:istry)?\.?(?![\w])"
    r"|Sinistre|Demande|Facture|Matricule|Immatriculation|Allocataire|Carte[ \t]+vitale"
    # a driver's licence (its state first: "DL TX 38817204"), an insurer's short label
    r"|DL|Driver'?s?[ \t]+licen[cs]e|Permis(?:[ \t]+de[ \t]+conduire)?|Ins\.?(?=[ \t]*:)"
    r"|Registre[ \t]+national|NISS"
    # public insurers' numbers: "Medicaid ID", "OHIP", "RAMQ", "NAM", "AME"
    r"|Medicaid|Medicare|MBI|HICN|OHIP|RAMQ|NAM|Health[ \t]+card|AME|CMU|C2S"
    # other countries' personal and registration numbers: Ireland's PPSN, New Zealand's
    # NHI, Northern Ireland's H&C, South Africa's HPCSA, Swiss AVS, UK NHS, Australia's IHI
    r"|PPSN?|NHI|H&C|HPCSA|AVS|AHV|NHS|CHI|IHI|SIN|NAS|NISS|BSN"
    # national identity cards: Hong Kong, Morocco, France, Sri Lanka, Pakistan, elsewhere
    r"|HKID|CIN|CNI|NIC|CNIC|National[ \t]+ID|Identity[ \t]+card|Carte[ \t]+d'identit[ée]"
    # a file named by its kind: "Dossier lésion professionnelle 512 884 273"
    rf"|Dossier(?:[ \t]+[{_LO}]{{4,}}){{1,2}}"
    # "N° d'assurance-maladie 218 447 309"
    rf"|N°(?:[ \t]+(?:de[ \t]+|d'|du[ \t]+)?[{_LO}]+(?:-[{_LO}]+)*(?:[ \t]+[{_LO}]{{4,}})?)?"
)
# letters and digits in groups: "MR-330-281-4", "WLP 448 2019 77", "78.11.03-214.56"
_ID_GROUPS = r"[A-Z0-9](?:[A-Z0-9]|[-/ ](?=[A-Z0-9])|\.(?=\d))+(?:\([A-Z0-9]\))?"
# what a dose or a count ends with: "No. 5000 units"
_UNIT = r"(?i:mg|mcg|µg|g|ml|ui|iu|units?|unit[ée]s?|cc|mmol|%)(?![\w])"
# the word for "number" after any label: "Clinic No.", "file no.", "Carnet n°", "IP No.:"
_NUMBER_WORD = r"(?:No\.?|NO\.?|no\.|Nr\.?|Number|number|[nN][°º])"
# labels whose number counts or places things, not people: "Room No 1204", "Dose no. 2"
_NOT_ID_LABEL = (
    r"(?i:rooms?|beds?|wards?|lit|chambre|salle|box|page|step|stage|grade|cycle|doses?"
    r"|tablets?|episodes?|size|taille|level|niveau|floor|[ée]tage|gate|porte|line|ligne"
    r"|question|item|table|figure|fig|bus|train|flight|vol|route|highway)"
)
_MONTH_EN = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DATE_PREP = (
    r"(?:on|since|from|until|till|by|before|after|in|started|began|le|du|au|depuis|d[èe]s"
    r"|en|jusqu'(?:au|en))"
)
_WEEKDAY = (
    r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|(?i:lundi|mardi|mercredi"
    r"|jeudi|vendredi|samedi|dimanche))"
)
_ORDINAL_EN = (
    r"(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth"
    r"|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth"
    r"|twentieth|thirtieth|(?:twenty|thirty)[- ](?:first|second|third|fourth|fifth|sixth"
    r"|seventh|eighth|ninth))"
)
_NUMBER_FR = (
    r"(?i:premier|deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|treize|quatorze"
    r"|quinze|seize|dix-sept|dix-huit|dix-neuf|vingt|vingt[- ]et[- ]un|vingt-(?:deux|trois"
    r"|quatre|cinq|six|sept|huit|neuf)|trente|trente[- ]et[- ]un)"
)
_MONTH_FR = (
    r"(?i:janvier|f[ée]vrier|mars|avril|mai|juin|juillet|ao[ûu]t|septembre|octobre"
    r"|novembre|d[ée]cembre|janv\.|f[ée]vr\.|sept\.|oct\.|nov\.|d[ée]c\.)"
)
_US_STATE = (
    r"A[LKZR]|C[AOT]|D[EC]|FL|GA|HI|I[DLNA]|K[SY]|LA|M[EDAINSOT]|N[EVHJMYCD]|O[HKR]|PA|RI"
    r"|S[CD]|T[NX]|UT|V[TA]|W[AVIY]"
)
# Canadian provinces and Australian states ("Haileybury, ON", "Mandurah WA")
_CA_AU_STATE = r"ON|QC|NS|NB|BC|AB|MB|SK|PE|PEI|NL|YT|NT|NU|NSW|QLD|VIC|TAS|ACT|SA"
# postcodes: a UK one, its two halves spaced ("BT48 7AB", "SW1A 1AA"); a Canadian one
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?[ ]\d[ABD-HJLNP-UW-Z]{2}"
_CA_POSTCODE = r"[A-Z]\d[A-Z][ ]?\d[A-Z]\d"
# what blood pressure is followed by, not a town: "BP 130, Pulse 88"
_VITAL = (
    r"(?:Pulse|Pouls|Temp|Temperature|Sats?|Saturation|Weight|Poids|Resps?|Glyc[ée]mie|Glucose"
    r"|Heart|Rate|Pain|Douleur|Height|Taille|Sitting|Standing|Supine|Lying|Right|Left|Manual"
    r"|Repeat|Mean|Systolic|Diastolic)"
)
_ORG_STOP = (
    r"(?:The|A|An|At|In|To|From|Our|His|Her|Their|This|That|Per|Via|Le|La|Les|Au|Aux|Du|Un|Une)"
)
# a period ends a name, but "St. Mary's", "D.W. McMillan"
_ORG_WORD = (
    rf"(?:(?:St|Ste|Mt)\.|(?:[{_UP}]\.){{1,3}}(?=[ \t]*[{_UP}])"
    rf"|[{_UP}][\w'’&-]*(?:/[{_UP}][\w'’&-]*)?)"  # "OB/GYN"
)
# a private company's form in brackets: "(Pvt) Ltd", "(Pty) Ltd"
_BRACKETED_FORM = r"(?:\((?:Pvt|Pty|Private)\)[ \t]+)?"
# words of an organisation's name, joined as names are: "Chantiers de l'Atlantique",
# "Restos du Cœur", "Stanley Black & Decker", then a legal form: "Lidl France SNC"
_ORG_NAME = (
    rf"{_ORG_WORD}(?:(?:[ \t]+(?:&|of|and|et|de|du|des|de[ \t]+la|aux?)[ \t]+|[ \t]+(?:de[ \t]+)?"
    rf"[dl]['’]|[ \t]+){_ORG_WORD}){{0,5}}"
    rf"(?:,?[ \t]+{_BRACKETED_FORM}(?:Inc|LLC|Ltd|inc|SA|SAS|SARL|SNC)\b\.?)?"
)
_EN_ORG_SUFFIX = (
    r"(?:(?=[A-Z])(?i:Hospital|Medical[ \t]+Cent(?:er|re)|Health[ \t]+(?:Cent(?:er|re)|System)"
    r"|Clinic"
    r"|Infirmary|Hospice|Nursing[ \t]+Home|Rehabilitation[ \t]+Cent(?:er|re)|Medical[ \t]+Group"
    r"|Cancer[ \t]+Cent(?:er|re)|Emergency[ \t]+Dep(?:artmen)?t|Healthcare|Practice"
    r"|Assisted[ \t]+Living|Care[ \t]+Cent(?:er|re)|School|Library|University|College"
    r"|Inc\.?|LLC|Ltd\.?|Corp(?:oration)?\.?|Company|Associates|Partners)"
    # capitalised heads only: "Mental health" opening a line is not an organisation
    r"|(?:Primary|Urgent|Senior|Family)[ \t]+(?:Care|Health)|Behavioral[ \t]+Health"
    r"|Center|Centre|Institute|Laborator(?:y|ies)|Lab|Group|Pediatrics|Paediatrics"
    r"|Credit[ \t]+Union|Bank|Pharmacy|Manor|Schools|Bakery|Logistics|Foundation|Services?"
    r"|Health(?:[ \t]+Plan)?|Home[ \t]+(?:Health|Care)|Care[ \t]+Home|Insurance|Mutual"
    # homes that are institutions, not a patient's home: "Lakeside Funeral Home"
    r"|(?:Funeral|Veterans'?|Children'?s|Soldiers'?|National|Community|Retirement|Group"
    r"|Memorial|Rest)[ \t]+Home"
    r"|Blue[ \t]+(?:Cross|Shield)|Rehabilitation|Foods|Systems|Bureau|Society|Agency|Council"
    r"|Church|Cooperative|Co-op|Union|Authority|Association|Federation|Network|Alliance"
    r"|Enterprises|Industries|Holdings|Technologies|Solutions|Transportation|Transit|Motors"
    r"|Farms|Dairy|Market|Stores|Restaurant|Hotel|Academy|Daycare|Preschool"
    # community services and housing: "Eastside Food Pantry", "Riverside Commons"
    r"|Shelter|Pantry|Mission|Ministries|Coalition|Outreach|Club|Clubhouse|Trust|Consortium"
    r"|Lodge|Residences?|Apartments|Commons|Towers|Collective|Board"
    # private practices: "Riverside Physiotherapy", "Harbour Chiropractic"
    r"|Physiotherapy|Physio|Chiropractic|Osteopathy|Podiatry|Dental"
    # nations, emergency services and practices: "Crow Tribe", "Lake County EMS",
    # "Harbor OB/GYN"
    r"|Tribe|Nation|Reservation|Pueblo|EMS|Ambulance|Fire[ \t]+(?:Department|Rescue)"
    r"|Police[ \t]+Department|Sheriff'?s[ \t]+Office|OB/GYN|Obstetrics|Gynecology|Midwifery"
    r")"
    # "Colorado School of Mines", "Services, Inc."
    rf"(?:[ \t]+(?:of|for)[ \t]+(?:the[ \t]+)?{_ORG_WORD}(?:[ \t]+{_ORG_WORD}){{0,2}})?"
    rf"(?:,?[ \t]+{_BRACKETED_FORM}(?:Inc|LLC|Ltd|Corp)\b\.?)?"
)
_FR_ORG_PREFIX = (
    r"(?i:h[ôo]pital|clinique|polyclinique|centre[ \t]+hospitalier(?:[ \t]+(?:universitaire"
    r"|r[ée]gional|intercommunal|sp[ée]cialis[ée]))?|groupe[ \t]+hospitalier|institut|ehpad"
    r"|maison[ \t]+de[ \t]+sant[ée]|centre[ \t]+de[ \t]+sant[ée]|soci[ée]t[ée]|association"
    r"|entreprise|lyc[ée]e|[ée]cole|coll[èe]ge|universit[ée]|mairie|transports"
    r"|[ée]tablissements|maison[ \t]+m[ée]dicale|h[ôo]tel-dieu|coop[ée]rative|fondation"
    r"|laboratoire)"
    r"|CHU|CHR|CHI|CH|CHS|EPSM|CMP|ADMR|SARL|SAS|CPAM|CAF|MSA|CARSAT|CCAS|MDPH|CISSS|CIUSSS"
    r"|CLSC|SAMU|SMUR|SDIS|SSIAD"
    # capitalised only: "au centre de la lésion", "the centre that ..." are not names
    r"|Cabinet|Centre|Mutuelle|Laboratoire|Pharmacie|R[ée]sidence|Boulangerie|Garage|Banque"
    r"|Maternit[ée]|Cr[èe]che|Club|Sporting|Entente|Caisse|Agence|Syndicat|Conseil|Office"
    r"|Mutualit[ée]"
    # community services: "Foyer de vie Les Tilleuls", "Secours populaire"
    r"|Foyer|Secours|Collectif|Amicale|Atelier|District"
    # clubs, insurers, employers and social services: "Comité des fêtes de Lescoff",
    # "Caisse-maladie Anniviarde", "Café-Restaurant du Bisse", "CPAS de Saint-Gilles"
    r"|Comit[ée]|Caisse-maladie|Caf[ée](?:-[A-Z][a-z]+)?|Restaurant|Brasserie|Auberge"
    r"|H[ôo]tel|P[êe]cheries|Chantiers|Conserveries?|CMS|CPAS|CSSS|ASBL"
)
# lowercase words between a French prefix and the name: "Cabinet médical des", "Centre de
# rééducation", "École élémentaire"
_FR_ORG_LINK = rf"(?:de[ \t]+la|de|du|des|d'|l'|les|le|la|[{_LO}]{{4,}})"
_WORK = (
    r"works?|worked|working|employed|employee|retired|engineer|teacher|nurse|driver|manager"
    r"|clerk|technician|student|worker|farmer|operator|mechanic|cashier|welder|accountant"
    r"|officer|volunteer|member|sells|chauffeur|travaille|employ[ée]e?|salari[ée]e?"
    r"|ouvri[èe]re?|retrait[ée]e?|cariste|soudeu(?:r|se)|camionneur|agricult(?:eur|rice)"
    r"|vendeu(?:r|se)|caissi[èe]re?|[ée]tudiante?|adh[ée]rente?|ancien(?:ne)?"
    r"|joueu(?:r|se)|licenci[ée]e?|b[ée]n[ée]vole|membre|player|plays"
)
# what follows a work cue before the employer: "engineer at", "employed by", "retraité de
# la", "soudeur aux"
_WORK_LINK = (
    r"at|for|by|with|of|to|chez|pour|de[ \t]+la|de[ \t]+l['’]|du|des|aux|au|[àa][ \t]+la"
    r"|[àa][ \t]+l['’]"
)
_INSURANCE = (
    r"insurance|insured|coverage|plan|payer|assurance|assur[ée]e?|mutuelle|affili[ée]e?"
    r"|application"
)
_INSURANCE_LINK = r"via|with|through|by|to|for|:|[àa][ \t]+la|aupr[èe]s[ \t]+de|par"
# where a patient is sent, followed or enrolled: "referred to X", "adressé par X",
# "suivie au X", "attends X", "scolarisé à X"
_CARE_CUE = (
    r"referred[ \t]+(?:to|by)|referral[ \t]+(?:sent[ \t]+)?to|followed[ \t]+(?:at|by)"
    r"|transferred[ \t]+to|enrolled[ \t]+(?:in|at)|attends|goes[ \t]+to"
    r"|adress[ée]e?[ \t]+(?:par|[àa]|au|vers)|orient[ée]e?[ \t]+vers"
    r"|transf[ée]r[ée]e?[ \t]+(?:[àa]|au|vers)"
    r"|suivie?[ \t]+(?:par|[àa]|au)|pris[ \t]+en[ \t]+charge[ \t]+(?:par|[àa]|au)"
    r"|scolaris[ée]e?[ \t]+(?:[àa]|au)|inscrite?[ \t]+(?:[àa]|au)"
    # a rescue service: "évacuée par le PGHM", "evacuated by Coastguard Rescue"
    r"|[ée]vacu[ée]e?[ \t]+(?:par|vers)|evacuated[ \t]+(?:by|to)"
    # help a service gives: "support offered via X", "aide à domicile par X"
    r"|(?:support|services?|assistance|help|aid|resources|program(?:me)?|aide|soutien"
    r"|accompagnement)[ \t]+(?:[a-zß-öø-ÿ]+[ \t]+){0,3}(?:via|through|par|aupr[èe]s[ \t]+de)"
)
_REGION = region_regex()
# a town: capitalised words, French ones hyphenated or with particles ("Saint-Arsène",
# "Battle Ground", "Bourg-en-Bresse", "Le Mans")
_TOWN = (
    rf"(?:(?:Le|La|Les|Saint|Sainte|St\.|Fort|Mount|Mt\.|New|North|South|East|West)[ \t]+)?"
    rf"[{_UP}][{_LO}'’]+(?:[- ](?:(?:sur|sous|en|le|la|les|de|du|des|l[èe]s)-)?"
    rf"[{_UP}][{_LO}'’]+){{0,3}}"
)
# a country after a town: "Vava'u, Tonga", "Bobo-Dioulasso, Burkina Faso"
_COUNTRY = country_regex()
_RESIDENCE = (
    r"lives|living|resides|residing|resident|moved|relocated|grew[ \t]+up|born|vit|r[ée]side"
    r"|habite|domicili[ée]e?|demeurant|originaire|n[ée]e?|install[ée]e?"
    # where a remote patient is flown from: "medevac from Kiana", "flown in from Hay River"
    r"|medevac(?:ed|'d)?|flown(?:[ \t]+in)?|airlifted|[ée]vacu[ée]e?"
)
_PLACE_PREPOSITION = (
    r"(?<![\w])(?:in|at|from|near|to|outside|[àa]|de|d['’]|pr[èe]s[ \t]+de|vers)[ \t]+"
)
_TOWN_WORD = rf"[{_UP}][{_LO}'’]+"
_RESIDENCE_LINK = r"in|at|to|from|of|near|[àa]|au|aux|de|d['’]|en|pr[èe]s[ \t]+de"
_FR_STREET = (
    r"(?i:rue|avenue|av\.|bd|boulevard|place|pl\.|all[ée]e|impasse|chemin|route|quai|cours"
    r"|square|voie|passage|r[ée]sidence|lieu-dit|rond-point|cit[ée]|chauss[ée]e|sentier|villa"
    r"|faubourg|esplanade|promenade|parvis|traverse|mont[ée]e|ruelle|venelle|clos)"
)
_EN_STREET = (
    r"(?i:Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Boulevard|Blvd\.?|Lane|Ln\.?|Drive|Dr\.|Court"
    r"|Ct\.?|Way|Place|Pl\.?|Terrace|Parkway|Pkwy\.?|Circle|Highway|Hwy\.?|Square|Sq\.?"
    r"|Crescent|Close|Trail|Loop|Pike|Row|Mews|Gardens|Heights|Walk|Crossing|Ridge|Bend"
    r"|Hollow|Point|Alley|Path|Turnpike|Expressway|Plaza)"
)


_RANGE = re.compile(r"\d{1,4}-\d{1,4}")


def nir_key_is_valid(span: str) -> bool:
    """French NIR: the last two of 15 digits are 97 - (first 13 mod 97).

    Corsica's departments 2A and 2B count as 19 and 18 in the checksum.
    """
    compact = re.sub(r"[ .]", "", span).upper()
    body = compact[:13].replace("2A", "19", 1).replace("2B", "18", 1)
    return len(compact) == 15 and body.isdigit() and 97 - int(body) % 97 == int(compact[13:])


def _nir_score(span: str, score: float) -> float:
    """A valid key makes it certain; a NIR-shaped number with a typo is still redacted."""
    return 0.95 if nir_key_is_valid(span) else score


def _id_score(span: str, score: float) -> float | None:
    """5+ digits, or 3+ digits in 8+ letters and digits ("1EG4-TE5-MK73"); not "COVID-19",
    nor a range of values ("280-400")."""
    if _RANGE.fullmatch(span):
        return None
    digits = sum(ch.isdigit() for ch in span)
    alnum = sum(ch.isalnum() for ch in span)
    return score if digits >= 5 or (digits >= 3 and alnum >= 8) else None


def _intl_phone_score(span: str, score: float) -> float | None:
    """8 to 15 digits: ITU-T E.164's length for a number with its country code."""
    return score if 8 <= sum(ch.isdigit() for ch in span) <= 15 else None


def _record_score(span: str, score: float) -> float | None:
    return score if sum(ch.isdigit() for ch in span) >= 4 else None


def _plate_score(span: str, score: float) -> float | None:
    """A plate mixes letters and digits, 4 to 9 of them: "AB-123-CD", "KX21 LPM"."""
    digits = sum(ch.isdigit() for ch in span)
    letters = sum(ch.isalpha() for ch in span)
    return score if digits >= 2 and letters >= 1 and 4 <= digits + letters <= 9 else None


def _org_score(span: str, score: float) -> float | None:
    """Not a clinical department ("Blood Bank") nor shorthand ("ED", "PO QD")."""
    return None if is_clinical_department(span) or is_shorthand(span) else score


_CAPITALISED = re.compile(r"(?<![\w'’-])[A-ZÀ-ÖØ-Þ][\w'’&-]*")


def _heading_org_score(span: str, score: float) -> float | None:
    """A heading's organisation: two capitalised words or more, some lowercase letters,
    not a ward, shorthand nor medical words ("Consultation de médecine interne",
    "Rheumatology", "Labor & Delivery")."""
    if len(_CAPITALISED.findall(span)) < 2 or not any(ch.islower() for ch in span):
        return None
    if terminology().is_term(span):
        return None
    return _org_score(span, score)


def _last_first_score(span: str, score: float) -> float | None:
    return None if any(is_not_a_name(part) for part in span.split(",")) else score


class RegexRecognizer(LocalRecognizer):
    """Case-sensitive regexes for one entity; the ``phi`` group, else the match, is reported.

    ``rescore(span, pattern_score)`` may change the score or reject the match (None).
    """

    name: str  # set by EntityRecognizer.__init__, which mypy cannot infer a type from

    def __init__(
        self,
        name: str,
        entity: str,
        patterns: Sequence[tuple[str, float]],
        language: str,
        rescore: Scorer | None = None,
    ) -> None:
        self._patterns = [(re.compile(regex, re.MULTILINE), score) for regex, score in patterns]
        self._rescore = rescore
        super().__init__(supported_entities=[entity], name=name, supported_language=language)

    def load(self) -> None:
        """Nothing to load: the patterns are compiled in ``__init__``."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: object = None
    ) -> list[RecognizerResult]:
        entity = self.supported_entities[0]
        results = []
        for pattern, score in self._patterns:
            for match in pattern.finditer(text):
                group = "phi" if "phi" in pattern.groupindex else 0
                start, end = match.span(group)
                final = self._rescore(text[start:end], score) if self._rescore else score
                if end <= start or final is None:
                    continue
                metadata = {
                    RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                }
                results.append(
                    RecognizerResult(entity, start, end, final, recognition_metadata=metadata)
                )
        return results


# (name, entity, patterns, validator); one table so the bench can add them one by one.
_SPECS: list[tuple[str, str, list[tuple[str, float]], Scorer | None]] = [
    (
        "MedopsTitledName",
        "TITLED_NAME",
        [(rf"(?<![\w.])(?:{_TITLE})[ \t]+(?P<phi>{_NAME})", 0.85)],
        None,
    ),
    (
        "MedopsRelationName",
        "RELATION_NAME",
        [
            (
                # "ex-girlfriend Ann", "step-son Leo", "half-sister Mia"
                rf"(?<![\w-])(?i:ex-|step-?|half-)?(?i:{_RELATION})(?i:-in-law)?[ \t]*[,:]?[ \t]+"
                rf"(?:(?:{_TITLE})[ \t]*)?"
                rf"(?!{_NOT_AFTER_RELATION})(?P<phi>{_NAME})",
                0.7,
            )
        ],
        None,
    ),
    (
        "MedopsSignedName",
        "SIGNED_NAME",
        [(rf"(?P<phi>{_NAME})[ \t]*,[ \t]*(?:{_CREDENTIAL})(?![\w])", 0.85)],
        None,
    ),
    (
        "MedopsFieldName",
        "FIELD_NAME",
        [
            # a field opening its line, or after a sentence or a wide gap on the line:
            # "11:20. Student: Ann Roe", "MRN 4471   Patient: Ann Roe"
            (
                rf"(?:^[ \t]*|(?<=[.;|][ \t])|(?<=[ \t]{{2}}))(?:[{_UP}][{_LO}]+[ \t]+)?"
                rf"(?i:{_NAME_FIELD})[ \t]*:[ \t]*(?:(?:{_TITLE})[ \t]*)?(?P<phi>{_NAME_LIST})",
                0.8,
            ),
            # a signature line of a role and an initialled name: "IDE C. Lafon",
            # "Pharmacien : Th. Dewulf"; an initial needs a capitalised surname (not "E. coli")
            (
                r"^[ \t]*(?:IDE|IBODE|IADE|AS|ASH|RN|LPN|CNA|NP|PA|OT|PT|SLP|SW|Pharmacien(?:ne)?"
                r"|Pharmacist|Physio(?:therapist)?|Kin[ée]|Sage-femme|Midwife|Nurse|Infirmi[èe]re?)"
                rf"[ \t]*:?[ \t]+(?P<phi>[{_UP}][a-z]?\.[ \t]*{_NAME})[ \t]*$",
                0.8,
            ),
            # a chart's "LAST, First" line before the age and sex: "Qaunnaq, Elijah  44M"
            (
                rf"^[ \t]*(?P<phi>{_WORD},[ \t]*{_WORD}(?:[ \t]+{_INITIAL})?)(?=[ \t,]+\d{{1,3}}"
                r"[ \t]?(?:[MFH]|y/?o|yo|ans|yrs?)(?![\w]))",
                0.8,
            ),
            # a nickname in quotes after a name: 'Thibodeaux, Odile ("Nan")'
            (
                rf"[{_UP}][{_LO}]+[ \t]+\([ \t]*[\"“](?P<phi>{_NAME})[\"”][ \t]*\)",
                0.7,
            ),
            # a nurse's or a scribe's field anywhere on the line: "14:22  Triage RN: A. Bell"
            (
                rf"(?<![\w/])(?:RN|LPN|CNA|IDE|IBODE|Scribe)[ \t]*:[ \t]*(?:(?:{_TITLE})[ \t]*)?"
                rf"(?P<phi>{_NAME})",
                0.8,
            ),
        ],
        None,
    ),
    (
        # the EHR's "LAST,FIRST" in capitals ("OROZCO,KYLE"); lists of abbreviations
        # written the same way ("HTN,CAD") are not names
        "MedopsLastFirstName",
        "LAST_FIRST_NAME",
        [(rf"(?<![\w,])[{_UP}]{{2,}}(?:[-'’][{_UP}]{{2,}})?,[ ]?[{_UP}]{{2,}}(?![\w,])", 0.6)],
        _last_first_score,
    ),
    (
        # the dictating clinician's code after a signature: "FILBERT BRIGHT, M.D.    FB59"
        "MedopsSignatureCode",
        "SIGNATURE_CODE",
        [(rf"(?:{_CREDENTIAL})[ \t]+(?P<phi>[A-Z]{{2,4}}\d{{1,4}})(?![\w])", 0.6)],
        None,
    ),
    (
        # dictation reference line under a signature: "GPP/church/olinger", "XGT:holmes"
        "MedopsTypistInitials",
        "TYPIST_INITIALS",
        [(r"^[ \t]*[A-Z]{2,4}[:/](?P<phi>[a-z]{3,}(?:/[a-z]{3,})*)[ \t]*$", 0.6)],
        None,
    ),
    (
        "MedopsRecordNumber",
        "MEDICAL_RECORD",
        [
            (
                rf"(?<![\w])(?i:{_RECORD_FIELD})(?:[ \t]*(?i:No\.?|Number|Num|ID|#|N°))?[ \t]*[:#]?"
                rf"[ \t]*(?P<phi>{_ID_GROUPS})(?![\w])(?![ \t]*{_UNIT})",
                0.85,
            ),
            # any label then a number word: "Clinic No. AB/IMM/23-0672", "file no.
            # XY-2291/17", "Carnet n° KM-0412/24", "ordre n° ONCD-XX 1187"
            (
                rf"(?<![\w])(?!{_NOT_ID_LABEL}(?![\w]))[{_UP}{_LO}][\w'’&-]*\.?[ \t]+{_NUMBER_WORD}"
                rf"[ \t]*[:#]?[ \t]*(?P<phi>{_ID_GROUPS})(?![\w])(?![ \t]*{_UNIT})",
                0.85,
            ),
            # a number sign is a label whatever word comes before: "file # 44817", "58 ans,
            # n° MP-ONC-24/0713"
            (
                rf"(?<![\w&])(?:#|[nN][°º])[ \t]*:?[ \t]*(?P<phi>{_ID_GROUPS})(?![\w])"
                rf"(?![ \t]*{_UNIT})",
                0.85,
            ),
        ],
        _record_score,
    ),
    (
        "MedopsSsn",
        "SSN",
        [
            (
                r"(?i:\bSSN|\bSS#|social[ \t]+security(?:[ \t]+(?:number|no\.?|#))?)[ \t]*[:#]?"
                r"[ \t]*(?P<phi>\d{3}[- ]?\d{2}[- ]?\d{4})(?![\w-])",
                0.9,
            ),
            (
                # "Numéro de sécurité sociale : 2 52 03 ...", "NIR 252..." (any spacing)
                r"(?i:s[ée]curit[ée][ \t]+sociale|\bNIR|\bN°[ \t]*SS|\bNSS)[ \t]*[:#]?[ \t]*"
                r"(?P<phi>[12](?:[ .]?[\dAB]){12}(?:[ .]?\d{2})?)(?![\w])",
                0.9,
            ),
            (r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])", 0.6),
        ],
        None,
    ),
    (
        "MedopsFrNir",
        "FR_NIR",
        [
            (
                r"(?<![\w])[12][ .]?\d{2}[ .]?(?:0[1-9]|1[0-2]|[2-9]\d)[ .]?(?:\d{2}|2[ABab])"
                r"[ .]?\d{3}[ .]?\d{3}(?:[ .]?\d{2})?(?![\w])",
                0.9,
            )
        ],
        _nir_score,
    ),
    (
        # record, job and account numbers without a label: 7+ digits, or a short letter
        # prefix on 5+ digits ("XW277/90683"); low score so a date or phone wins a tie
        "MedopsIdNumber",
        "ID_NUMBER",
        [
            (r"(?<![\w.,/+-])\d{7,}(?![\w/]|[.,]\d)", 0.45),
            (r"(?<![\w.,/+-])\d{2,}(?:-\d+){2,}(?![\w/-]|[.,]\d)", 0.45),
            (r"(?<![\w/-])[A-Z]{1,3}\d{3,}(?:/\d{3,})?(?![\w/-])", 0.45),
            (r"(?<![\w-])[A-Z0-9]{2,}(?:-[A-Z0-9]{2,})+(?![\w-])", 0.45),
            # a letter prefix on spaced digit groups: "NB 7741 0032", "PJN 775 412 S"
            (
                r"(?<![\w/-])(?!(?:BP|HR|RR|PA|TA|FC|FR|SAT|GCS)\b)[A-Z]{2,4}(?:[ -]\d{2,}){2,}"
                r"(?:[ -][A-Z0-9])?(?![\w/-])",
                0.45,
            ),
        ],
        _id_score,
    ),
    (
        # a vehicle's registration after its cue: "véhicule immatriculé AB-123-CD",
        # "licence plate KX21 LPM"; a plate has too few digits for the record rules
        "MedopsVehiclePlate",
        "ID_NUMBER",
        [
            (
                r"(?i:\bimmatricul[ée]e?s?|\bplaque[ \t]+(?:d'immatriculation|min[ée]ralogique)"
                r"|\b(?:licen[cs]e|number|registration|reg\.?)[ \t]+plate)[ \t]*(?:n°|no\.?|#|:)?"
                r"[ \t]*(?P<phi>[A-Z0-9]{1,4}(?:[- ][A-Z0-9]{1,4}){0,2})(?![\w-])",
                0.7,
            )
        ],
        _plate_score,
    ),
    (
        "MedopsAgeOver89",
        "AGE_OVER_89",
        [
            (
                r"(?<![\w.])(?P<phi>9\d|1[0-2]\d)(?:[ \t-]*(?:year|yr)s?[ \t-]*old"
                r"|[ \t-]*(?:yo|y\.o\.|y/o|yrs?|y|ans|an)(?![\w/])"
                # "102 years," (not "years ago")
                r"|[ \t]+years(?=[ \t]*[,;)]|\.(?:[ \t]|$)))",
                0.85,
            ),
            (
                # "is now 92", "who is 97", "lived to 96"
                r"(?i:\b(?:is[ \t]+now|now|who[ \t]+is|lived[ \t]+to|turned|died[ \t]+at"
                r"|d[ée]c[ée]d[ée]e?[ \t]+[àa]))[ \t]+(?P<phi>9\d|1[0-2]\d)"
                r"(?=[ \t]*[,.;)]|[ \t]+(?:and|with|in|at|from)\b)",
                0.7,
            ),
            # an age and a sex: "93 F,", "96M"; not a temperature ("Temp 99 F", "T: 101F")
            (
                r"(?<![\w.])(?<!T[ :])(?<!T: )(?<!mp[ :])(?<!mp: )(?<!ax[ :])(?<!ax: )(?<!re[ :])"
                r"(?<!re: )(?<!er )(?<!to )(?P<phi>9\d|1[0-2]\d)[ \t]?[MFH](?![\w.'’°-])",
                0.6,
            ),
            # a bare number between a name and a lowercase word: "Mabel Strand, 96, room";
            # or after a capitalised name, closing a clause: "Ann Lee, 94, MRN", "wife Ann, 93."
            (rf"(?<=[{_LO}],[ \t])(?P<phi>9\d|1[0-2]\d)(?=,[ \t]*[{_LO}])", 0.6),
            (
                rf"[{_UP}][{_LO}]+,[ \t](?P<phi>9\d|1[0-2]\d)(?=[ \t]*(?:[,;)]|\.(?:[ \t]|$)))",
                0.6,
            ),
            (
                r"(?i:\b(?:aged?|[âa]g[ée]e?[ \t]+de))[ \t]*:?[ \t]*(?P<phi>9\d|1[0-2]\d)(?![\d.])",
                0.85,
            ),
            # written in words: "ninety-two years old", "âgée de quatre-vingt-seize ans"
            (
                r"(?i:(?<![\w-])(?P<phi>ninety(?:[- ](?:one|two|three|four|five|six|seven|eight"
                r"|nine))?|(?:one|a)[ \t]+hundred|quatre-vingt-(?:dix(?:-(?:sept|huit|neuf))?"
                r"|onze|douze|treize|quatorze|quinze|seize)|cent)(?=[ \t-]+(?:years?|yrs?|ans)\b))",
                0.85,
            ),
            # a name and its age in brackets: "Ada Reyes (94)"; an age and sex with a slash:
            # "Age/Sex: 92/F", "F/97"; a birthday: "her 95th birthday", "ses 92 ans"
            (rf"[{_UP}][{_LO}]+[ \t]+[{_UP}][{_LO}]+[ \t]+\((?P<phi>9\d|1[0-2]\d)\)", 0.6),
            (r"(?<![\w./])(?P<phi>9\d|1[0-2]\d)[ \t]*/[ \t]*[MFH](?![\w/]|\.\d)", 0.6),
            (r"(?<![\w./])[MFH][ \t]*/[ \t]*(?P<phi>9\d|1[0-2]\d)(?![\w/]|\.\d)", 0.6),
            (
                r"(?<![\w.])(?P<phi>9\d|1[0-2]\d)(?:st|nd|rd|th|e|ème)[ \t]+(?i:birthday"
                r"|anniversaire)",
                0.85,
            ),
        ],
        None,
    ),
    (
        # m/yy or m/dd without a year ("CABG in 3/80", "seen on 2/03"); /10 is a pain score
        "MedopsShortDate",
        "SHORT_DATE",
        [
            (r"(?<![\d./])(?:0?[1-9]|1[0-2])/(?!10(?!\d))\d{2}(?![\d/]|[.,]\d)", 0.5),
            (r"(?<![\d./])(?:0?[1-9]|1[0-2])/(?:19|20)\d{2}(?![\d/])", 0.6),
            (
                # "on 3/3", "le 2/8": a one-digit day needs a preposition ("2/2" is not a date)
                rf"(?i:\b{_DATE_PREP})[ \t]+(?P<phi>(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01]))"
                r"(?![\d/]|[.,]\d)",
                0.5,
            ),
            (
                rf"(?i:\b{_DATE_PREP})[ \t]+(?P<phi>(?:19|20)\d{{2}})"
                r"(?![\d/]|[.,]\d|[ \t]*(?i:mg|ml|g|mcg|ui|iu|units?|cc)\b)",
                0.5,
            ),
        ],
        None,
    ),
    (
        "MedopsWrittenDate",
        "WRITTEN_DATE",
        [
            # "Jan 16, 2024", Canada's "Jan 16/24"
            (
                rf"\b{_MONTH_EN}\.?[ \t]+\d{{1,2}}(?:st|nd|rd|th)?"
                r"(?:,?[ \t]+\d{4}|/\d{2}(?:\d{2})?)?\b",
                0.6,
            ),
            # a day's short name before a date: "Sat 17/08/2024", "Wed 5 June 2024"
            (
                r"(?<![\w])(?:Mon|Tue|Tues|Wed|Thu|Thur|Thurs|Fri|Sat|Sun|(?i:lun|mar|mer|jeu|ven"
                r"|sam|dim))\.?,?(?=[ \t]+\d{1,2}(?:[/.-]\d{1,2}[/.-]\d{2,4}|[ \t]+[A-Za-zé]{3}))",
                0.5,
            ),
            # a night or a stay across two days: "Nuit du 21 au 22/11/2023", "12 to 14/3/24"
            (
                r"(?<![\w/.])[0-3]?\d[ \t]+(?:au|et|to|and|-)[ \t]+[0-3]?\d[/.][01]?\d[/.]"
                r"(?:19|20)?\d{2}(?![\w/])",
                0.6,
            ),
            (
                rf"\b\d{{1,2}}(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?{_MONTH_EN}\b\.?"
                r"(?:,?[ \t]+\d{4}\b)?",
                0.6,
            ),
            (rf"\b(?:1er|[0-3]?\d)[ \t]+{_MONTH_FR}(?:[ \t]+\d{{2,4}})?(?![\w])", 0.7),
            (rf"\b{_MONTH_EN}\.?,?[ \t]+\d{{4}}\b|(?<![\w]){_MONTH_FR}[ \t]+\d{{4}}\b", 0.6),
            (
                rf"(?<![\w]){_WEEKDAY}(?:[ \t]+(?:the[ \t]+)?\d{{1,2}}(?:st|nd|rd|th)?"
                r"(?![\w/:.,]\d))?(?![\w])",
                0.5,
            ),
            (rf"(?i:\b{_ORDINAL_EN}[ \t]+of)[ \t]+{_MONTH_EN}\b(?:,?[ \t]+\d{{4}}\b)?", 0.6),
            (
                rf"(?<![\w-]){_NUMBER_FR}[ \t]+{_MONTH_FR}(?![\w])"
                rf"(?:[ \t]+(?:\d{{4}}|(?i:deux[ \t]+mille)(?:[ \t-]+{_NUMBER_FR})?)(?![\w-]))?",
                0.6,
            ),
            (
                r"(?i:\b(?:depuis|en|courant|jusqu'en|d'|de))[ \t]*"
                rf"(?P<phi>{_MONTH_FR})(?![\w])",
                0.5,
            ),
            # a part of a month, the part included: "mi-avril", "début mars", "mid-April",
            # "late May 2023" (not "mid-dose", "early morning")
            (
                r"(?<![\w-])(?:(?i:mi-|mi[ \t]+|d[ée]but[ \t]+|fin[ \t]+)(?:d['’]|de[ \t]+)?"
                rf"{_MONTH_FR}(?![\w])|(?i:mid-?|mid[ \t]+|early[ \t]+|late[ \t]+"
                rf"|end[ \t]+of[ \t]+|beginning[ \t]+of[ \t]+){_MONTH_EN}\b)(?:,?[ \t]+\d{{4}}\b)?",
                0.5,
            ),
            # days of one month: "du 3 au 11 janvier 2025", "from 3 to 11 January", "3-11
            # Jan"; the first day has no month of its own
            (
                r"(?<![\w/.,-])(?:1er|[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?[ \t]*(?:au|et|to|and"
                r"|[-–])[ \t]*(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?"
                rf"(?:{_MONTH_EN}\b\.?|{_MONTH_FR}(?![\w]))(?:,?[ \t]+\d{{4}}\b)?",
                0.6,
            ),
        ],
        None,
    ),
    (
        "MedopsPager",
        "PAGER_NUMBER",
        [
            (
                r"(?i:\b(?:pager|beeper|pgr|bleep|bip|ext|extension|poste|paged(?:[ \t]+at)?)\b\.?)"
                r"[ \t]*(?:#|no\.?|n°|:)?[ \t]*(?P<phi>\d{3,6}(?:-\d{4})?)(?![\d/]|[.-]\d)",
                0.7,
            ),
            # a phone and its extension, one span: "418-555-0192 poste 204", "(902) 555
            # 0142 ext. 31", "020 7946 0958 x12"; not a product ("12 34 56 x 2")
            (
                r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?"
                r"(?:\d{3,4}[ .-]\d{3,4}|\d{2}(?:[ .-]\d{2}){3})(?:[ .-]\d{2,4}){0,2}"
                r"[ \t]*,?[ \t]*(?i:poste|ext|extension|x)\.?[ \t]*(?:#|:)?[ \t]*\d{1,6}"
                r"(?![\w/]|[.,]\d)",
                0.7,
            ),
        ],
        None,
    ),
    (
        "MedopsFrPhone",
        "FR_PHONE_NUMBER",
        [
            (
                # one separator throughout: "02.25.2016" is a date
                r"(?<![\d+])(?:(?:\+|00)33[ .-]?(?:\(0\)[ .-]?)?[1-9]|0[1-9])(?P<sep>[ .-]?)\d{2}"
                r"(?:(?P=sep)\d{2}){3}(?!\d)",
                0.7,
            )
        ],
        None,
    ),
    (
        # an international number: "+44 7700 900418", "+32 (0)2 555 01 23"
        "MedopsIntlPhone",
        "INTL_PHONE_NUMBER",
        [
            (
                r"(?<![\w+])\+[1-9]\d{0,2}(?:[ .-]?\(0\))?(?:[ .-]\d{1,6}){2,5}(?![\w-]|[.,]\d)",
                0.6,
            )
        ],
        _intl_phone_score,
    ),
    (
        "MedopsStreetAddress",
        "STREET_ADDRESS",
        [
            (
                rf"(?<![\w])\d{{1,5}}[A-Za-z]?[ \t]+(?:{_ORG_WORD}[ \t]+){{1,3}}{_EN_STREET}"
                r"(?![\w])(?:[ \t]+\d{1,4}(?![\w]))?"
                r"(?:,?[ \t]*(?i:Apt|Suite|Unit|#)\.?[ \t]*[\w-]+)?",
                0.7,
            ),
            # a flat in a named building or estate: "Flat 3, Brook House", "Flat 12C, Block 3,
            # Lai Kok Estate", "Appartement 4, Résidence Les Pins"
            (
                r"(?<![\w])(?:Flat|Apartment|Apt\.?|Appartement|Appt\.?|Logement)[ \t]+"
                r"\d{1,4}[A-Z]?(?:,?[ \t]+(?:Block|Tower|Bloc|B[âa]timent|B[âa]t\.)[ \t]+"
                r"[A-Z0-9]{1,3})?,[ \t]*"
                rf"{_ORG_WORD}(?:[ \t]+(?:{_ORG_WORD}|de|des|du|of)){{0,3}}",
                0.7,
            ),
            # a street whose type is no street word ("7 Larkfield Park", "12 Ashgrove Trace"),
            # known by the town and postcode after it: ", Omagh, BT78 1AA"
            (
                rf"(?<![\w])\d{{1,5}}[A-Za-z]?[ \t]+(?:{_ORG_WORD}[ \t]+){{0,2}}{_ORG_WORD}"
                rf"(?=,[ \t]*{_TOWN},?[ \t]+(?:{_UK_POSTCODE}|(?:{_US_STATE})[ \t]+\d{{5}}"
                rf"|{_CA_POSTCODE})(?![\w]))",
                0.7,
            ),
            # a street or a road named without a number: "a shop on Mill St", "on US-12"
            (
                rf"(?<![\w])(?:on|off|along)[ \t]+(?P<phi>(?:{_ORG_WORD}[ \t]+){{1,2}}(?:Street|St"
                r"|Avenue|Ave|Road|Rd|Boulevard|Blvd|Highway|Hwy|Lane|Ln|Drive|Pike)\b\.?"
                # not "I-131", iodine
                r"|(?:US|SR|Route|Highway|Hwy)[ -]?\d{1,4}(?![\w-]))",
                0.7,
            ),
            # a post-office box: "P.O. Box 78", "PO Box 40217", "boîte postale 12"; "BP 45"
            # only before a town or a postcode (a blood pressure is followed by neither)
            (
                r"(?<![\w.])(?:P\.?[ \t]?O\.?[ \t]*(?i:box)|(?i:post[ \t]+office[ \t]+box"
                r"|bo[îi]te[ \t]+postale|case[ \t]+postale))[ \t]*(?:No\.?|#)?[ \t]*\d{1,6}"
                r"(?![\w/]|[.,]\d)",
                0.7,
            ),
            (
                r"(?<![\w.])B\.?[ \t]?P\.?[ \t]*\d{1,5}(?![\w/]|[.,]\d)"
                rf"(?=,?[ \t]+\d{{5}}(?![\w])|,[ \t]*(?!{_VITAL}(?![\w])){_TOWN_WORD})",
                0.7,
            ),
            (
                rf"(?<![\w])\d{{1,4}}(?:[ \t]?(?:bis|ter|[A-D]))?,?[ \t]+{_FR_STREET}[ \t]+"
                rf"(?:(?:(?:des|de|du|les|la|le|aux|au)(?![\w])|l'|d'|{_ORG_WORD})[ \t]*){{1,6}}",
                0.7,
            ),
        ],
        None,
    ),
    (
        # an address after its label, up to the end of the line or sentence
        "MedopsAddressField",
        "STREET_ADDRESS",
        [
            (
                r"(?i:\b(?:(?:home|mailing|street|postal)[ \t]+)?address|\badresse|\bdomicile)"
                r"[ \t]*:[ \t]*"
                r"(?P<phi>[^\n;:]{5,80}?)(?=[ \t]*(?:\.(?:[ \t]|$)|\n|;|$))",
                0.7,
            ),
            (
                rf"(?<![\w])(?i:lieu-dit|hameau|lotissement)[ \t]+"
                rf"(?:(?:de[ \t]+la|du|des|de|l['’])[ \t]*)?"
                rf"(?:{_ORG_WORD}[ \t]*){{1,4}}",
                0.7,
            ),
        ],
        None,
    ),
    (
        "MedopsPostcode",
        "POSTCODE",
        [
            (
                rf"(?<![\w])(?:(?:{_CAP}[ \t]+){{0,2}}{_CAP},[ \t]*)?(?:{_US_STATE})[ \t]+\d{{5}}"
                r"(?:-\d{4})?(?![\w-])",
                0.7,
            ),
            # an Australian state and postcode: "Mandurah WA 6210", "Dubbo NSW 2830"
            (
                rf"(?<![\w])(?:{_TOWN}[ \t]+)?(?:NSW|QLD|VIC|TAS|ACT|SA|WA|NT)[ \t]+\d{{4}}"
                r"(?![\w-])",
                0.6,
            ),
            # a UK postcode and the town before it: "Omagh BT78 1AA", "St Ives, TR26 2JB"
            (rf"(?<![\w])(?:{_TOWN},?[ \t]+)?{_UK_POSTCODE}(?![\w])", 0.6),
            # a Belgian or Swiss address: "Parvis de Saint-Gilles, 1060 Bruxelles",
            # "route du Village, 1950 Sion"; four digits after a comma, then a town
            (
                rf"(?:(?<![\w]){_FR_STREET}[ \t]+(?:(?:de|du|des|la|le|aux?|l['’]|d['’])[ \t]*"
                rf"|{_ORG_WORD}[ \t]*){{1,5}},[ \t]*|(?<=,[ \t]))[1-9]\d{{3}}[ \t]+"
                # a count of units is no town: "Héparine, 5000 Unités"
                r"(?!(?i:units?|unit[ée]s?|calories?|doses?|cells?|cellules|copies)\b)"
                rf"{_TOWN_WORD}"
                rf"(?:[- ]{_TOWN_WORD}){{0,2}}(?![\w])",
                0.6,
            ),
            (
                rf"(?<![\w])(?:0[1-9]|[1-8]\d|9[0-8]|2[AB])\d{{3}}[ \t]+(?:[{_UP}][{_LO}'’-]{{2,}}"
                rf"|[{_UP}]{{3,}})(?:[ \t-]+(?:[{_UP}][\w'’-]+|sur|sous|en|le|la|les|de|du|CEDEX"
                r"|Cedex))*",
                0.6,
            ),
        ],
        None,
    ),
    (
        # "works as a nurse at X", "employed by X", "chauffeur chez X", "retraité de la X"
        "MedopsEmployer",
        "EMPLOYER",
        [
            (
                rf"(?i:\b(?:{_WORK}))\b[^.\n;]{{0,40}}?(?i:\b(?:{_WORK_LINK}))[ \t]+"
                # "member of the Crow Tribe"; not "works with the OT team"
                rf"(?:(?<=of[ \t])the[ \t]+)?(?!{_ORG_STOP}\b)(?P<phi>{_ORG_NAME})",
                0.6,
            ),
            (rf"(?<![\w])chez[ \t]+(?!{_ORG_STOP}\b)(?P<phi>{_ORG_NAME})", 0.6),
            # a clinician's practice: "Dr. Ann Lee of Harbor Family Medicine"
            (
                rf"(?<![\w.])(?:{_TITLE})[ \t]+{_NAME}[ \t]+(?:of|from|at)[ \t]+(?:the[ \t]+)?"
                rf"(?!{_ORG_STOP}\b)(?P<phi>{_ORG_NAME})",
                0.6,
            ),
            # a field naming the employer or the school: "Employer: Acme Tools"
            (
                r"^[ \t]*(?i:employer|employeur|entreprise|company|soci[ée]t[ée]|school|[ée]cole"
                r"|[ée]tablissement[ \t]+scolaire|insurer|assureur|payer|organisme)[ \t]*:[ \t]*"
                rf"(?!{_ORG_STOP}\b)(?P<phi>{_ORG_NAME})",
                0.6,
            ),
            (
                rf"(?i:\b(?:{_CARE_CUE}))[ \t]*:?[ \t]*(?:(?i:the|la|le|l['’])[ \t]*)?"
                rf"(?!{_ORG_STOP}\b|(?:{_TITLE})[ \t])(?P<phi>{_ORG_NAME})",
                0.6,
            ),
            # an insurer's acronym right after the word: "mutuelle CNOPS", "insurer GEMS"
            (
                r"(?i:\b(?:mutuelle|assurance|assureur|insurer|insurance|caisse))[ \t]+"
                r"(?P<phi>[A-Z]{3,8})(?![\w])",
                0.6,
            ),
            (
                rf"(?i:\b(?:{_INSURANCE}))\b[^.\n;]{{0,25}}?(?i:(?<![\w])(?:{_INSURANCE_LINK}))"
                rf"[ \t]*(?!{_ORG_STOP}\b)(?P<phi>{_ORG_NAME})",
                0.6,
            ),
        ],
        _org_score,
    ),
    (
        # a town before its region, postcode or after a residence cue: "Carthage, MO",
        # "Fairmont, Minnesota", "Chalindrey (Haute-Marne)", "lives in Golden", "G0L 2K0"
        "MedopsTownRegion",
        "TOWN",
        [
            (
                rf"(?<![\w])(?P<phi>{_TOWN},[ \t]*(?!MD|PA)(?:{_US_STATE}))(?![\w])(?![ \t]*\d)",
                0.6,
            ),
            (rf"(?<![\w])(?P<phi>{_TOWN}(?:,[ \t]*|[ \t]*\()(?:{_REGION}))(?![\w])", 0.6),
            (
                rf"(?<![\w])(?P<phi>{_TOWN},[ \t]*(?:{_CA_AU_STATE}|{_COUNTRY}))(?![\w])"
                r"(?![ \t]*\d)",
                0.6,
            ),
            # without the comma after a place preposition: "from Mandurah WA"; not the
            # states that are words or credentials
            (
                rf"{_PLACE_PREPOSITION}(?P<phi>{_TOWN}[ \t]+(?!MD|PA|OR|IN|ME|DO|OK|HI|ACT|SA|AB)"
                rf"(?:{_US_STATE}|{_CA_AU_STATE}))(?![\w])(?![ \t]*\d)",
                0.6,
            ),
            # a settlement, numbered or not, and a commune's part: "Mango Settlement No. 3",
            # "section communale Belle-Anse", "quartier Sicap Baobab"
            (
                rf"(?<![\w])(?:{_TOWN_WORD}[ \t]+){{1,2}}(?:Settlement|Colony|Township)"
                r"(?:[ \t]+No\.?[ \t]*\d{1,3})?(?![\w])",
                0.6,
            ),
            (
                r"(?<![\w])(?i:section[ \t]+communale|quartier|localit[ée]|commune)[ \t]+"
                rf"(?:(?:de|du|d['’])[ \t]*)?(?P<phi>{_TOWN})",
                0.6,
            ),
            # a town after an organisation, closing the line: "Mill Road Hospice, Kessock"
            # (a named one: not "cc: Pharmacy, Dietetics")
            (
                rf"(?<![\w]){_ORG_WORD}[ \t]+{_EN_ORG_SUFFIX},[ \t]*(?P<phi>{_TOWN})[ \t]*$",
                0.6,
            ),
            # a parish, an Irish county: "St. Martin Parish", "Co. Kerry"
            (
                rf"(?<![\w])(?:{_TOWN}[ \t]+Parish|Co\.[ \t]+{_TOWN_WORD}"
                rf"|(?i:paroisse)[ \t]+(?:(?:de|d['’])[ \t]*)?{_TOWN})(?![\w])",
                0.6,
            ),
            # a French or Walloon compound name after a place preposition: "in Petit-de-Grat"
            (
                rf"{_PLACE_PREPOSITION}(?P<phi>{_TOWN_WORD}(?:-(?:sur|sous|en|le|la|les|de|du|des"
                rf"|l[èe]s|aux?|d['’]|l['’])-?{_TOWN_WORD})+)",
                0.6,
            ),
            # where someone heads or comes from: "toward Kiana", "Habite Steenvoorde"
            (
                rf"(?<![\w])(?i:toward|towards|habite|demeurant|domicili[ée]e?[ \t]+[àa])[ \t]+"
                rf"(?P<phi>{_TOWN})",
                0.6,
            ),
            # "Home: Coolnaharragill, Glenbeigh."
            (
                rf"(?<![\w])Home[ \t]*:[ \t]*(?P<phi>{_TOWN}(?:,[ \t]*{_TOWN}){{0,2}})"
                r"(?=[ \t]*(?:[.;]|$))",
                0.6,
            ),
            # MD and PA are also credentials: a place preposition first ("in Erie, PA")
            (
                rf"{_PLACE_PREPOSITION}(?P<phi>{_TOWN},[ \t]*(?:MD|PA))(?![\w])(?![ \t]*\d)",
                0.6,
            ),
            # a letter's place and date line: "Rennes, le 3 mars 2024", "Leeds, March 3"
            (
                rf"^[ \t]*(?P<phi>{_TOWN}),[ \t]+(?:le[ \t]+(?:1er|\d)|{_MONTH_EN}\.?[ \t]+\d)",
                0.6,
            ),
            (rf"(?<![\w]){_CA_POSTCODE}(?![\w])", 0.6),
            (
                rf"(?i:\b(?:{_RESIDENCE}))(?:[ \t]+[{_LO}]+)?(?:[ \t]+(?i:{_RESIDENCE_LINK}))+"
                rf"[ \t]*(?:the[ \t]+)?(?P<phi>{_TOWN})",
                0.6,
            ),
        ],
        None,
    ),
    (
        # a known town after a place preposition, one to three words: "in Hartford",
        # "près de Quimper", "from Fort Wayne" (the filters still drop eponyms: "de Parkinson")
        "MedopsTownGazetteer",
        "CITY",
        [
            (rf"{_PLACE_PREPOSITION}(?P<phi>{_TOWN_WORD}(?:[ \t-]{_TOWN_WORD}){{{n}}})", 0.6)
            for n in range(3)
        ],
        is_town,
    ),
    (
        "MedopsHealthcareOrg",
        "HEALTHCARE_ORGANIZATION",
        [
            (
                rf"(?<![\w'’-])(?!{_ORG_STOP}\b){_ORG_WORD}(?:[ \t]+(?:{_ORG_WORD}|of|and|the|&))"
                rf"{{0,4}}[ \t]+{_EN_ORG_SUFFIX}\b"
                # its site after a dash: "Indian Health Service - Pine Ridge"
                rf"(?:[ \t]+[-–—][ \t]+{_ORG_WORD}(?:[ \t]+{_ORG_WORD}){{0,2}})?",
                0.7,
            ),
            # care in Dutch, German and Nordic names: "AZ Groeninge", "UZ Leuven",
            # "Kantonsspital Baden", "Bergen Sentrum Legesenter", "Sint-Jansziekenhuis"
            (
                rf"(?<![\w'’-])(?:(?:AZ|UZ|GZA|ZNA)(?=[ \t]+[{_UP}])|(?:{_ORG_WORD}[ \t]+){{0,3}}"
                # capitalised, not English's "Hospital"
                rf"(?=[{_UP}])(?!Hospital)[\w-]*(?i:spital|ziekenhuis|klinik(?:um)?|kliniek|sykehus"
                r"|legesenter|legekontor|krankenhaus|gezondheidscentrum|huisartsenpraktijk"
                r"|v[åa]rdcentral|sjukhus))(?![\w])"
                rf"(?:[ \t]+{_ORG_WORD}){{0,2}}",
                0.7,
            ),
            # a French emergency service by its département: "SAMU 974", "SDIS 2B" (not
            # its phone number, "SAMU 15")
            (
                r"(?<![\w])(?:SAMU|SMUR|SDIS|CODIS)[ \t]+(?!15(?![\w]))(?:97\d|2[AB]|\d{2})"
                r"(?![\w])",
                0.7,
            ),
            # a letterhead: a name, its town and state alone on a line ("Harbor Sleep
            # Medicine, Duluth, MN"), whatever its words
            (
                rf"^[ \t]*(?P<phi>{_ORG_WORD}(?:[ \t]+(?:{_ORG_WORD}|of|and|the|&)){{1,5}}),[ \t]*"
                rf"{_TOWN},[ \t]*(?:{_US_STATE}|{_CA_AU_STATE})[ \t]*$",
                0.7,
            ),
            # a prison: "HMP Lagan Valley", "HMYOI Hydebank"
            (
                rf"(?<![\w])(?:HMP|HMYOI|HM[ \t]+Prison)[ \t]+{_ORG_WORD}"
                rf"(?:[ \t]+{_ORG_WORD}){{0,3}}",
                0.7,
            ),
            (
                # "University of Vermont", "City of Troy", "Diocese of Erie"
                r"\b(?:(?i:Hospital|Clinic|Infirmary)|University|College|Diocese|City|County|Town"
                r"|Village|Borough|Parish|Archdiocese|Bank)[ \t]+of[ \t]+(?:the[ \t]+)?"
                rf"{_ORG_WORD}(?:[ \t]+(?:{_ORG_WORD}|of|and|the)){{0,4}}",
                0.7,
            ),
            (
                rf"(?<![\w])(?:{_FR_ORG_PREFIX})"
                # "Centre d'accueil de jour des Lilas"
                rf"(?:[ \t]+{_FR_ORG_LINK}|(?<=['’]){_FR_ORG_LINK}){{0,5}}"
                rf"[ \t]*{_ORG_WORD}(?:(?:[ \t-]+|[ \t]+(?:de[ \t]+la|de|du|des|et)[ \t]+"
                rf"|[ \t]+(?:de[ \t]+)?[dl]['’])"
                rf"(?:{_ORG_WORD}|sur|en)){{0,4}}"
                # a site of a hospital group: "CHU de Nantes, site Nord"
                rf"(?:,[ \t]+(?:site|campus|pavillon|b[âa]timent)[ \t]+(?:de[ \t]+|d['’])?"
                rf"{_ORG_WORD}(?:[ \t-]+{_ORG_WORD})?)?",
                0.7,
            ),
        ],
        _org_score,
    ),
    (
        "MedopsHeadingOrg",
        "HEALTHCARE_ORGANIZATION",
        [
            # a note's heading then its organisation: "DISCHARGE SUMMARY - Timiskaming Shores
            # General", "VISITE À DOMICILE - CMS régional Val d'Anniviers"; a specialty
            # ("- Rheumatology") or a heading in capitals on both sides is no name
            (
                rf"^[ \t]*[{_UP}][{_UP}0-9'’ /&().]{{3,}}?[ \t]+[-–—][ \t]+"
                rf"(?P<phi>[{_UP}][^\n,;|:]{{2,60}}?)[ \t]*(?=,|;|\||$)",
                0.7,
            ),
        ],
        _heading_org_score,
    ),
]

# A title opening a name span ("Mme Yvette Morel" from spaCy): not part of the identifier.
TITLE_PREFIX = re.compile(rf"(?:{_TITLE})[ \t]+(?=[{_UP}])")

RECOGNIZER_NAMES: tuple[str, ...] = tuple(name for name, *_ in _SPECS)
ENTITIES: tuple[str, ...] = tuple(entity for _, entity, *_ in _SPECS)


def medops_recognizers(language: str) -> list[RegexRecognizer]:
    """Every medops recognizer, for one language (the patterns cover English and French)."""
    return [
        RegexRecognizer(name, entity, patterns, language, rescore)
        for name, entity, patterns, rescore in _SPECS
    ]
