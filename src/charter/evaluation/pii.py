"""Finding personal data in text an agent produced: its answer and the messages it sent.

Pattern recognizers only, offline and deterministic: email addresses, phone numbers, payment
card numbers (Luhn-checked, so order numbers do not count), US social security numbers and
IBANs. A name alone is not flagged: addressing a customer by name is the job.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

__all__ = ["PiiFinding", "find_pii"]

# The local part is at most 64 characters (RFC 5321), which also keeps the search linear:
# unbounded, every start in a long run of word characters scanned to its end looking for @
# (an answer of 100,000 letters took about 30 s).
_EMAIL = re.compile(r"[\w.+-]{1,64}@[\w-]+(?:\.[\w-]+)+")
# Not inside a hyphenated identifier (ORD-2024-000123) and not a date running into a clock
# time ("2024-01-15 10:30" would otherwise read as ten digits).
_PHONE = re.compile(r"(?<![\w+])(?<!\w-)\+?\d[\d ()-]{8,}\d(?!\w|:\d)")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_SSN = re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b")


@dataclass(frozen=True, slots=True)
class PiiFinding:
    kind: str
    text: str

    def shown(self) -> str:
        # Reports must not become a copy of the leak: show the kind and a masked sample.
        return f"{self.kind} {self.text[:3]}***"


def find_pii(text: str, *, allow: Collection[str] = ()) -> list[PiiFinding]:
    """Personal data in ``text``, except values in ``allow`` (compared case-insensitively)."""
    allowed = {a.casefold() for a in allow}
    found: list[PiiFinding] = []
    for match in _EMAIL.finditer(text):
        if match.group(0).casefold() not in allowed:
            found.append(PiiFinding("email address", match.group(0)))
    for match in _SSN.finditer(text):
        found.append(PiiFinding("social security number", match.group(0)))
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and _luhn(digits):
            found.append(PiiFinding("payment card number", match.group(0)))
    for match in _IBAN.finditer(text):
        found.append(PiiFinding("IBAN", match.group(0)))
    for match in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 10 <= len(digits) <= 15 and not _luhn_card_seen(found, match.group(0)):
            found.append(PiiFinding("phone number", match.group(0)))
    return [f for f in found if f.text.casefold() not in allowed]


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _luhn_card_seen(found: list[PiiFinding], text: str) -> bool:
    # A card number also looks like a long phone number; report it once, as a card.
    return any(f.kind == "payment card number" and text.strip() in f.text for f in found)
