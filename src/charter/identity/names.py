"""One canonical form for a person's name, so two spellings of one person are one person.

Separation of duties compares people: the approver with the user a run acts for, the
promoter with a release's author, a role's holder with whoever claims it. Compared as raw
strings, ``Alice`` and ``alice`` are two people and the rule is void. Every name that enters
Charter as a person (a run's user, ``--as``, a role's holder, an author) goes through
:func:`canonical_person` where it enters, and only the canonical form is stored, so deeper
comparisons are plain equality.

The canonical form:

1. Unicode NFKC, so compatibility variants collapse: fullwidth letters (U+FF21...),
   mathematical bold letters (U+1D400...), the ligature U+FB01, the Kelvin sign and the long
   s become their ASCII letters;
2. leading and trailing whitespace trimmed;
3. case folded (``str.casefold``, so ``ß`` is ``ss``), then NFKC again (folding can leave a
   string that is not in normal form);
4. then it must be 1-128 of ``a-z 0-9 . _ @ : + -``, starting with a letter or digit (the
   grammar :class:`~charter.identity.principal.Principal` always had, lower case).

Refused, each with the reason: non-strings, text longer than 512 characters before
normalisation (NFKC can lengthen text 18-fold), empty text, control characters, invisible
format characters (zero-width space and joiners, the byte-order mark, soft hyphen,
bidirectional overrides and isolates: they make two different names look the same, or one
name look like another), internal whitespace, and any letter that is not ASCII after step 3.
The last rule is the cheap defence against confusables: a Cyrillic a (U+0430) or a Greek
omicron (U+03BF) in an otherwise Latin name cannot pass for the Latin letter. What it cannot
catch are look-alikes inside ASCII itself (``rn`` and ``m``, ``0`` and ``o``, ``1`` and
``l``): those names are distinct people, and whoever grants roles sees them as typed.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from charter.core.errors import UserError

__all__ = ["PERSON_CHARACTERS", "InvalidPersonName", "canonical_person", "fold_person"]

MAX_LENGTH: Final = 128
# Bounded before normalising: NFKC may expand a character up to 18 times.
_MAX_GIVEN: Final = 4 * MAX_LENGTH
_SHOWN: Final = 64  # characters of a refused name quoted in the message
_CANONICAL: Final = re.compile(r"[a-z0-9][a-z0-9._@:+-]{0,127}")
#: Every character a canonical name may hold.
PERSON_CHARACTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._@:+-")
_RULES: Final = "use 1-128 letters, digits or . _ @ : + - (starting with a letter or digit)"
# Unicode categories that can never be part of a name: controls, invisible format characters
# (zero-width, bidi controls, BOM), line and paragraph separators, private use, surrogates,
# unassigned code points.
_NEVER: Final = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Co": "a private-use character",
    "Cs": "a lone surrogate",
    "Cn": "an unassigned code point",
}


class InvalidPersonName(UserError):
    """A name given for a person cannot be one (see ``charter.identity.names``)."""

    code = "invalid_person_name"


def canonical_person(name: object, label: str = "user") -> str:
    """The canonical form of a person's name; two spellings of one person give one string.

    Args:
        name: the name as given (``--as``, a run's user, a role's holder...).
        label: what it names, for the message (``user``, ``--as``, ``granted by``...).

    Returns:
        The name NFKC-normalised, trimmed and case-folded: ``" Alice "`` (or the same in
        fullwidth letters) gives ``"alice"``.
        Canonicalising a canonical name returns it unchanged.

    Raises:
        InvalidPersonName: ``name`` is not a string, is empty once trimmed, too long, holds
            control, invisible or bidirectional characters, internal whitespace, or a letter
            that is not ASCII once normalised (a likely confusable).
    """
    if not isinstance(name, str):
        raise InvalidPersonName(f"{label} {name!r} is not a valid identifier; {_RULES}")
    if len(name) > _MAX_GIVEN:
        raise InvalidPersonName(
            f"{label} {_shown(name)} is not a valid identifier; {_RULES}: it is too long"
        )
    for char in name:
        what = _NEVER.get(unicodedata.category(char))
        # Whitespace controls (tab, newline...) around a name are trimmed below; inside one
        # they are refused with the other whitespace.
        if what is not None and not char.isspace():
            raise InvalidPersonName(
                f"{label} {_shown(name)} is not a valid identifier; {_RULES}: it contains {what} "
                f"({_code_point(char)}), which can make one name look like another"
            )
    folded = fold_person(unicodedata.normalize("NFKC", name).strip())
    if _CANONICAL.fullmatch(folded):
        return folded
    raise InvalidPersonName(
        f"{label} {_shown(name)} is not a valid identifier; {_RULES}: {_why(folded)}"
    )


def fold_person(text: str) -> str:
    """Steps 1 and 3 of the canonical form (NFKC, case folded, NFKC again) without the
    trimming and the grammar: what a piece of a name (a pattern's literal part) becomes."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _why(folded: str) -> str:
    """Why a normalised name fails the grammar, in words."""
    if not folded:
        return "it is empty"
    if len(folded) > MAX_LENGTH:
        return f"it is {len(folded)} characters long once normalised, at most {MAX_LENGTH}"
    for char in folded:
        if char.isspace():
            return f"it contains whitespace ({_code_point(char)})"
        if not char.isascii():
            return (
                f"it contains {char!r} ({_code_point(char)}), which is not an ASCII letter or "
                "digit even once normalised and may pass for one"
            )
    return (
        "it starts with a character other than a letter or digit, or contains a character "
        "other than . _ @ : + -"
    )


def _shown(name: str) -> str:
    """The name for a message: its repr, cut short when long."""
    if len(name) <= _SHOWN:
        return repr(name)
    return f"{name[:_SHOWN]!r}... ({len(name)} characters)"


def _code_point(char: str) -> str:
    named = unicodedata.name(char, "")
    return f"U+{ord(char):04X} {named}" if named else f"U+{ord(char):04X}"
