"""A person's name has one canonical form: NFKC, trimmed, case-folded, ASCII grammar."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from charter.core.errors import UserError
from charter.identity.names import InvalidPersonName, canonical_person

# Spellings of one person, each written with escapes so the test says what it holds.
SAME_AS_ALICE = [
    "alice",
    "Alice",
    "ALICE",
    "  alice ",
    "alice\n",
    "\talice",
    "\uff21\uff4c\uff49\uff43\uff45",  # fullwidth
    "\U0001d41a\U0001d425\U0001d422\U0001d41c\U0001d41e",  # mathematical bold
    "\u00a0alice\u3000",  # no-break and ideographic spaces around it
    "alice\u2028",  # a line separator at the end is whitespace too
]


@pytest.mark.parametrize("spelling", SAME_AS_ALICE, ids=ascii)
def test_spellings_of_one_person_have_one_canonical_form(spelling: str) -> None:
    assert canonical_person(spelling) == "alice"


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("Lead@ACME.example", "lead@acme.example"),
        ("Stra\u00dfe", "strasse"),  # casefold: sharp s is ss
        ("\ufb01ona", "fiona"),  # the fi ligature
        ("\u212aelvin", "kelvin"),  # the Kelvin sign
        ("svc:Bot+1", "svc:bot+1"),
        ("A.B_C-D", "a.b_c-d"),
        ("42", "42"),
        ("a" * 128, "a" * 128),
    ],
    ids=ascii,
)
def test_compatibility_forms_and_case_fold_to_ascii(given: str, canonical: str) -> None:
    assert canonical_person(given) == canonical


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("\n", "it is empty"),
        ("al ice", "whitespace (U+0020 SPACE)"),
        ("al\tice", "whitespace (U+0009)"),
        ("al\u00a0ice", "whitespace (U+0020 SPACE)"),  # NFKC makes it a space first
        ("ali\u200bce", "invisible formatting character (U+200B ZERO WIDTH SPACE)"),
        ("ali\u200dce", "U+200D ZERO WIDTH JOINER"),
        ("\ufeffalice", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
        ("alice\u00ad", "U+00AD SOFT HYPHEN"),
        ("\u202ealice", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("\u2066alice\u2069", "U+2066 LEFT-TO-RIGHT ISOLATE"),
        ("alice\u200f", "U+200F RIGHT-TO-LEFT MARK"),
        ("al\x00ice", "control character (U+0000)"),
        ("alice\x7f", "control character (U+007F)"),
        ("ali\u2028ce", "whitespace (U+2028 LINE SEPARATOR)"),
        ("alice\ue000", "private-use character"),
        ("alice\ud800", "lone surrogate"),
        ("\u0430lice", "U+0430 CYRILLIC SMALL LETTER A"),  # a Cyrillic a: a confusable
        ("b\u03bfb", "U+03BF GREEK SMALL LETTER OMICRON"),
        ("\u00e5lice", "U+00E5 LATIN SMALL LETTER A WITH RING ABOVE"),
        ("\u0130lkay", "U+0307 COMBINING DOT ABOVE"),  # folds to i + a combining dot
        ("a" * 129, "129 characters long once normalised, at most 128"),
        ("-alice", "starts with a character other than a letter or digit"),
        (".alice", "starts with a character other than a letter or digit"),
        ("ali/ce", "contains a character other than"),
        ('alice"', "contains a character other than"),
    ],
    ids=ascii,
)
def test_what_cannot_be_a_name_is_refused_saying_why(given: str, why: str) -> None:
    with pytest.raises(InvalidPersonName) as refused:
        canonical_person(given, "--as")
    message = str(refused.value)
    assert message.startswith("--as ")
    assert "is not a valid identifier; use 1-128 letters, digits or . _ @ : + -" in message
    assert why in message


@pytest.mark.parametrize("given", [None, 5, b"alice", ["alice"]], ids=repr)
def test_a_name_must_be_text(given: object) -> None:
    with pytest.raises(InvalidPersonName, match="is not a valid identifier"):
        canonical_person(given)


def test_very_long_input_is_refused_before_normalising_and_quoted_short() -> None:
    # One character that NFKC expands 18-fold: normalising 10^6 of them would be the attack.
    huge = "\ufdfa" * 1_000_000
    with pytest.raises(InvalidPersonName, match=r"\(1000000 characters\).*too long") as refused:
        canonical_person(huge)
    assert len(str(refused.value)) < 400


def test_invalid_person_name_is_a_user_error_with_a_stable_code() -> None:
    assert issubclass(InvalidPersonName, UserError)
    assert InvalidPersonName.code == "invalid_person_name"


@given(st.text(max_size=200))
def test_canonical_forms_are_fixed_points_and_valid_names(text: str) -> None:
    try:
        canonical = canonical_person(text)
    except InvalidPersonName:
        return
    assert canonical_person(canonical) == canonical
    assert canonical == canonical.strip().casefold()
    assert canonical.isascii()
    assert 1 <= len(canonical) <= 128


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}", fullmatch=True))
def test_every_name_principal_accepted_before_is_still_a_name_in_lower_case(name: str) -> None:
    assert canonical_person(name) == name.lower()
