"""What personal data looks like, as data: the given-name lexicon, the regular expressions and the
per-country tables the detectors in :mod:`governance.detectors` are built from.

Kept apart from the expressions so a reviewer can read (and a data owner can check) what counts as an email,
a phone number or an IBAN without reading polars code. Every pattern is matched against a value's stripped
text (see :func:`governance.detectors.text_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

DETECTORS = (
    "email",
    "phone",
    "person_name",
    "address",
    "date_of_birth",
    "national_id",
    "iban",
    "payment_card",
    "ip_address",
    "free_text",
)

# --- lexicon: common given names, lower case (English, German, French, Spanish, Portuguese, Italian, Dutch,
# Nordic, Polish, Russian, Turkish, Arabic, Indian, Chinese, Japanese, Korean). Words that are also common
# places, months or nouns (Jordan, Paris, June, Rose, Bill...) are left out on purpose.
GIVEN_NAMES = frozenset(
    """
    james john robert michael william david richard joseph thomas charles christopher daniel matthew anthony
    donald steven paul andrew joshua kenneth kevin brian george timothy ronald edward jason jeffrey ryan jacob
    gary nicholas eric jonathan stephen larry justin scott brandon benjamin samuel gregory alexander frank
    patrick raymond jack dennis jerry tyler aaron adam nathan henry douglas zachary peter kyle ethan walter
    noah jeremy christian keith roger terry gerald harold sean carl arthur lawrence dylan jesse bryan bruce
    gabriel logan albert alan wayne elijah randy roy vincent ralph eugene russell philip mason liam lucas
    oliver jerome harry oscar leo theo
    mary patricia jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy betty margaret sandra
    ashley kimberly emily donna michelle carol amanda dorothy melissa deborah stephanie rebecca sharon laura
    cynthia kathleen amy angela shirley anna brenda pamela emma nicole helen samantha katherine christine
    debra rachel carolyn janet catherine maria heather diane ruth julie olivia joyce kelly lauren christina
    joan evelyn judith megan andrea cheryl hannah jacqueline martha gloria teresa ann sara frances kathryn
    janice jean abigail alice judy sophia grace denise danielle beverly isabella theresa diana natalie
    brittany marie kayla alexis lori ava mia zoe zoë chloe ella jodie amelia lily isla
    hans jürgen juergen klaus wolfgang uwe dieter günter guenter horst helmut stefan andreas jörg joerg jens
    lars sven lukas leon finn jonas felix maximilian ursula ute monika petra sabine birgit gabriele renate
    heike karin anja katrin silke lea lena leonie johanna
    pierre michel philippe alain nicolas françois francois jacques christophe sébastien sebastien julien
    antoine hugo louis nathalie isabelle sylvie françoise valérie valerie sophie camille chloé manon inès
    léa élodie aurélie céline
    josé jose antonio manuel francisco javier jesús carlos miguel alejandro rafael pablo sergio fernando
    jorge luis alberto diego juan carmen dolores pilar isabel lucía lucia elena ana marta cristina paula
    joão joao pedro tiago gonçalo beatriz mariana
    giuseppe giovanni francesco marco luca alessandro matteo lorenzo stefano roberto giulia chiara francesca
    federica valentina alessia martina
    jan pieter daan bram sanne fleur anders erik nils björn bjorn ingrid astrid sigrid
    piotr krzysztof tomasz paweł pawel marek agnieszka katarzyna małgorzata magdalena ivan dmitri dmitry
    sergei sergey olga natalia irina tatiana
    mehmet mustafa ahmet ayşe ayse fatma emine zeynep mohammed muhammad mohamed ahmed omar fatima yusuf
    hassan
    rahul amit sanjay vijay anil suresh ramesh priya pooja anjali deepak arjun saurabh neha sunita
    wei ming hiroshi takeshi kenji yuki haruto sakura yui jiwoo seojun minjun
    """.split()
)
COMPANY_WORDS = (
    r"gmbh|ag|kg|kgaa|ohg|gbr|ug|e\.\s?v|se|inc|llc|llp|lp|ltd|limited|plc|corp|corporation|co|company|"
    r"sa|s\.\s?a|sas|s\.a\.s|sarl|s\.à\s?r\.l|s\.a\.r\.l|srl|s\.r\.l|spa|s\.p\.a|sl|s\.l|bv|b\.v|nv|n\.v|"
    r"oy|oyj|ab|asa|a/s|aps|pty|pte|kk|group|holding|holdings|bank|trust|foundation|university|services|"
    r"solutions|systems|technologies|consulting|partners|associates|industries|logistics|international"
)

NAME_WORD = r"\p{Lu}[\p{L}'’]*(?:-\p{Lu}[\p{L}'’]*)?"
PARTICLE = r"(?:van|von|der|den|de|del|della|di|da|das|dos|du|des|la|le|ter|ten|zu|bin|ibn|al|el|y)"
NAME_FULL = rf"^{NAME_WORD}(?:\s+(?:{PARTICLE}\s+){{0,2}}(?:{NAME_WORD}|\p{{Lu}}\.)){{0,3}}$"
NAME_COMMA = rf"^{NAME_WORD}(?:[\s-]{NAME_WORD})?,\s*{NAME_WORD}(?:\s+(?:{NAME_WORD}|\p{{Lu}}\.))?$"
NAME_SHAPE = f"(?:{NAME_FULL})|(?:{NAME_COMMA})"
COMPANY = rf"(?i)(?:^|[\s,])(?:{COMPANY_WORDS})\.?(?:$|[\s,])|&|\+|\b(?:and|und|et)\b"

EMAIL = (
    r"^[\p{L}\p{N}._%+'-]+@[\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?"
    r"(?:\.[\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?)*\.\p{L}{2,}$"
)
EMAIL_IN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"

PHONE_EXTENSION = r"(?i)\s*(?:x|ext\.?|extension|durchwahl|dw\.?)\s*\d{1,6}$"
# Only phone characters, and 7-15 digits before an optional extension.
PHONE_CANDIDATE = (
    r"(?i)^\+?[\s().\-/]*(?:\d[\s().\-/]*){7,15}(?:(?:x|ext\.?|extension|durchwahl|dw\.?)\s*\d{1,6})?$"
)
PHONE_INTL = r"^(?:\+[1-9]|00[1-9]\d{0,3}[\s.\-/(])"
PHONE_PARENS = r"^\(\d{2,5}\)\s?\d{2,4}(?:[\s.\-/]?\d{2,5}){1,3}$"
PHONE_GROUPS = r"^\d{2,5}(?:[\s.\-/]\d{2,4}){2,5}$"
PHONE_TRUNK = r"^0\d{1,4}[\s/\-]\d{4,10}$"
NOT_PHONE = (
    r"^(?:\d{4}[./\-]\d{1,2}[./\-]\d{1,2}|\d{1,2}[./\-]\d{1,2}[./\-]\d{2,4}"  # dates
    r"|\d{3}[- ]\d{2}[- ]\d{4}"  # SSN
    r"|\d{1,3}(?:\.\d{1,3}){3}"  # IPv4
    r"|\d{1,3}(?:[.,']\d{3})+(?:[.,]\d{1,2})?)$"  # amounts with thousands separators
)
PHONE_IN = (
    r"(?:\+|\b00)[1-9]\d{0,3}[\s.\-/]?(?:\(\d{1,5}\)[\s.\-/]?)?\d{2,5}(?:[\s.\-/]?\d{2,5}){1,4}\b"
    r"|\(\d{3}\)\s?\d{3}[\s.\-]\d{4}\b|\b\d{3}[.\-]\d{3}[.\-]\d{4}\b"
)

STREET_NUMBER_FIRST = (  # English and French: "221B Baker Street", "12 rue de la Paix"
    r"^\d{1,5}[a-z]?(?:-\d{1,5})?,?\s+(?:[\p{L}\d.'’-]+\s+){0,4}"
    r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|way|terrace|"
    r"square|sq|highway|hwy|parkway|pkwy|circle|cir|crescent|close|mews|gardens|grove)\.?(?:$|[\s,#])"
    r"|^\d{1,4}\s*(?:bis|ter|[a-z])?,?\s+(?:rue|avenue|av\.|bd|boulevard|place|chemin|allée|allee|"
    r"impasse|quai|route|cours|passage)\b"
)
# Street words after which German addresses write the number (also the detectors' cheap gate, see
# governance.detectors.CANDIDATE: an address without a space holds one of them).
STREET_WORDS = r"straße|strasse|str\.|weg|gasse|allee|platz|ring|damm|ufer|chaussee|steig|pfad|markt"
STREET_NUMBER_LAST = (  # German, Spanish, Italian, Portuguese: "Hauptstraße 5", "Calle Mayor 12"
    rf"^[\p{{L}}.'’ -]*?(?:{STREET_WORDS})\s*\d{{1,3}}\s*[a-z]?(?:$|[\s,/-])"
    r"|^(?:calle|c/|avenida|avda\.?|paseo|plaza|carrera|camino|ronda|travesía|via|viale|piazza|corso|"
    r"largo|rua|praça|travessa)\s+[\p{L}\d .,'’º°ª-]*?\d{1,4}"
)
US_STATES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND "
    "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR"
).split()
POSTCODE_CITY = (  # "10115 Berlin", "1012 AB Amsterdam", "Springfield, IL 62704", "MEBANE NC  27302", "London NW1 6XE"
    r"^(?:[A-Z]{1,2}-)?\d{4,5}(?:\s[A-Z]{2})?\s+\p{Lu}[\p{L}'’.-]+(?:[\s-]\p{L}[\p{L}'’.-]*){0,3}$"
    rf"|\p{{Lu}}[\p{{L}} .'’-]+(?:,\s*[A-Z]{{2}}|\s+(?:{'|'.join(US_STATES)}))\s+\d{{5}}(?:-\d{{4}})?$"
    r"|\p{Lu}[\p{L} .'’-]+,?\s+[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}$"
)
ADDRESS = rf"(?i:{STREET_NUMBER_FIRST})|(?i:{STREET_NUMBER_LAST})|{POSTCODE_CITY}"

SSN = r"^(?:\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4})$"
SSN_IN = r"\b\d{3}-\d{2}-\d{4}\b"
NINO_SHAPE = r"^[A-Za-z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-Da-d]$"
NINO = r"^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]$"
NINO_BAD_PREFIX = ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")

# IBAN length per country (SWIFT IBAN registry).
IBAN_LENGTHS: Mapping[str, int] = dict(
    (code, int(n))
    for code, n in (
        item.split(":")
        for item in """
        AD:24 AE:23 AL:28 AT:20 AZ:28 BA:20 BE:16 BG:22 BH:22 BR:29 BY:28 CH:21 CR:22 CY:28 CZ:24 DE:22
        DK:18 DO:28 EE:20 EG:29 ES:24 FI:18 FO:18 FR:27 GB:22 GE:22 GI:23 GL:18 GR:27 GT:28 HR:21 HU:28
        IE:22 IL:23 IQ:23 IS:26 IT:27 JO:30 KW:30 KZ:20 LB:28 LC:32 LI:21 LT:20 LU:20 LV:21 MC:27 MD:24
        ME:22 MK:19 MR:27 MT:31 MU:30 NL:18 NO:15 PK:24 PL:28 PS:29 PT:25 QA:29 RO:24 RS:22 SA:24 SC:31
        SE:24 SI:19 SK:24 SM:27 ST:25 SV:28 TL:23 TN:24 TR:26 UA:29 VA:22 VG:24 XK:20
        """.split()
    )
)
IBAN_SHAPE = r"^[A-Za-z]{2}\d{2}[\sA-Za-z0-9-]{11,45}$"
# Country code, check digits and the country's length, in one expression.
IBAN = "^(?:" + "|".join(rf"{cc}\d{{2}}[A-Z0-9]{{{n - 4}}}" for cc, n in sorted(IBAN_LENGTHS.items())) + ")$"
IBAN_IN = r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,4})?\b"
LETTERS = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
LETTER_DIGITS = [str(10 + i) for i in range(26)]

CARD = r"^\d[\d -]{11,21}\d$"
CARD_IN = r"\b\d(?:[ -]?\d){12,18}\b"

OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = rf"{OCTET}(?:\.{OCTET}){{3}}"
HEX = r"[0-9A-Fa-f]{1,4}"
IPV6 = (
    rf"(?:{HEX}:){{7}}{HEX}|(?:{HEX}:){{1,7}}:|(?:{HEX}:){{1,6}}:{HEX}|(?:{HEX}:){{1,5}}(?::{HEX}){{1,2}}"
    rf"|(?:{HEX}:){{1,4}}(?::{HEX}){{1,3}}|(?:{HEX}:){{1,3}}(?::{HEX}){{1,4}}|(?:{HEX}:){{1,2}}(?::{HEX}){{1,5}}"
    rf"|{HEX}:(?::{HEX}){{1,6}}|:(?:(?::{HEX}){{1,7}}|:)|fe80:(?::[0-9A-Fa-f]{{0,4}}){{0,4}}%[0-9A-Za-z]+"
    rf"|::(?:ffff(?::0{{1,4}})?:)?{IPV4}|(?:{HEX}:){{1,4}}:{IPV4}"
)
IP = rf"^(?:{IPV4}|{IPV6})$"

# Dates of birth: year first (ISO, YYYY/MM/DD, SAP's YYYYMMDD; ISO may carry a midnight time) or day and
# month first (DD.MM.YYYY, DD/MM/YYYY, MM/DD/YYYY).
MIDNIGHT = r"(?:[T ]00:00(?::00(?:\.0+)?)?(?:Z|[+-]00:?00)?)?"


def date_shape(today: date) -> str:
    """Date-shaped values whose year is a plausible birth year (aged 16-100 on ``today``)."""
    years = "|".join(str(y) for y in range(today.year - 100, today.year - 15))
    return rf"^(?:{years})[-/]?\d{{2}}[-/]?\d{{2}}{MIDNIGHT}$|^\d{{1,2}}[./-]\d{{1,2}}[./-](?:{years})$"


# A column name agreeing with a detector (matched on the lower-cased name).
NAME_HINTS: Mapping[str, str] = {
    "email": r"e_?mail|smtp",
    "phone": r"phone|tel(?:efon)?(?:_|$|\d)|mobile|handy|fax|cell",
    "person_name": r"name|vorname|nachname|first|last|surname|contact|person",
    "address": r"addr|street|stras|strass|rue|calle|city|ort0|postal|zip|plz|pstlz",
    "date_of_birth": r"dob|birth|geburt|gebdat|born|naissance|nacimiento",
    "national_id": r"ssn|social_?sec|national|nino|tax_?id|steuer|passport|personal_?id",
    "iban": r"iban|bank|konto|bankn",
    "payment_card": r"card|credit|cc_?num|kreditkarte|\bpan\b",
    "ip_address": r"(?:^|_)ip(?:_|$|v4|v6|addr)|remote_addr|client_addr",
    "free_text": r"note|comment|descr|remark|text|memo|body|message|bemerkung",
}


# A value that is wholly one item (a phone, a card...) is that item, not free text around it.
NOT_FREE_TEXT = "|".join(f"(?:{shape})" for shape in (PHONE_CANDIDATE, CARD, IBAN_SHAPE, SSN, EMAIL))
