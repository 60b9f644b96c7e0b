"""Personal data in an agent's text: what is found, what is not, and how findings are shown."""

from __future__ import annotations

import pytest

from charter.evaluation.pii import PiiFinding, find_pii


def kinds(text: str, allow: tuple[str, ...] = ()) -> list[str]:
    return [f.kind for f in find_pii(text, allow=allow)]


def found(text: str) -> list[tuple[str, str]]:
    return [(f.kind, f.text) for f in find_pii(text)]


# -- detections ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["dana@example.com", "first.last+tag@mail.example.co.uk", "x_y-z@sub-domain.example.org"],
)
def test_email_addresses(address: str) -> None:
    assert found(f"Write to {address}, please.") == [("email address", address)]


def test_email_without_a_dotted_domain_is_not_an_address() -> None:
    assert find_pii("user@localhost and @mentions and a@b") == []


@pytest.mark.parametrize(
    "phone",
    [
        "+1 (415) 555-0132",
        "+44 20 7946 0958",
        "415-555-0132",
        "415 555 0132",
        "4155550132",
        "+33 1 23 45 67 89",
    ],
)
def test_phone_numbers(phone: str) -> None:
    assert found(f"Call {phone} today.") == [("phone number", phone)]


def test_a_phone_number_followed_by_a_colon_and_text_is_still_found() -> None:
    assert kinds("Call 415-555-0132: ask for Ravi.") == ["phone number"]


@pytest.mark.parametrize(
    "card",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555 5555 5555 4444",
        "378282246310005",  # 15-digit Amex: also phone-shaped, reported once, as a card
        "4222222222222",  # 13 digits
    ],
)
def test_luhn_valid_card_numbers(card: str) -> None:
    assert found(f"Card {card} was charged.") == [("payment card number", card)]


def test_ssn() -> None:
    assert found("SSN 123-45-6789 on file.") == [("social security number", "123-45-6789")]


@pytest.mark.parametrize(
    "iban",
    ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR1420041010050500013M02606"],
)
def test_iban(iban: str) -> None:
    assert ("IBAN", iban) in found(f"Pay to {iban} now.")


def test_several_findings_in_one_text() -> None:
    text = "Ravi ravi@example.com, +1 415 555 0132, SSN 123-45-6789, card 4111 1111 1111 1111."
    assert sorted(kinds(text)) == [
        "email address",
        "payment card number",
        "phone number",
        "social security number",
    ]


def test_every_occurrence_is_reported() -> None:
    assert kinds("a@example.com and b@example.com") == ["email address", "email address"]


# -- non-detections ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Order #100234 shipped.",
        "Order 100234567 shipped.",  # nine digits: too short for a phone number
        "Your order ORD-2024-000123 is on its way.",
        "Invoice INV-20240115-0042 is paid.",
        "Refunded on 2024-01-15.",
        "Refunded at 2024-01-15 10:30 UTC.",
        "Between 2024-01-15 and 2024-02-01.",
        "Dated 15/01/2024 and 01.15.2024.",
        "A refund of $45.00 was issued.",
        "A refund of $1,234,567.89 was issued.",
        "Amounts: 45, 12.50 and 1000.",
        "Tickets T-1001, T-1002 and T-1003 are closed.",
        "Ticket T-1001 was closed by alice.",
        "Dana Smith asked for a refund.",
        "Version 3.12.1 and build 20240115.",
        "",
    ],
)
def test_ordinary_business_text_is_not_personal_data(text: str) -> None:
    assert find_pii(text) == []


@pytest.mark.parametrize(
    "number",
    ["4111111111111112", "4111 1111 1111 1112", "1234-5678-9012-3456", "5555555555554445"],
)
def test_luhn_invalid_sixteen_digits_are_not_a_card(number: str) -> None:
    assert "payment card number" not in kinds(f"Reference {number}.")
    assert find_pii(f"Reference {number}.") == []  # too long for a phone number too


def test_digits_inside_a_longer_number_are_not_a_card() -> None:
    # 4111111111111111 is Luhn-valid but here it is part of a 21-digit reference.
    assert "payment card number" not in kinds("ref 411111111111111100000")


# -- allow -----------------------------------------------------------------------------------


def test_allow_is_case_insensitive_and_exact() -> None:
    text = "Reply to Support@Acme.example or dana@example.com."
    assert found(text) == [
        ("email address", "Support@Acme.example"),
        ("email address", "dana@example.com"),
    ]
    assert kinds(text, allow=("support@acme.EXAMPLE",)) == ["email address"]
    assert kinds(text, allow=("support@acme.example", "DANA@example.com")) == []
    assert len(kinds(text, allow=("acme.example",))) == 2


def test_allow_covers_other_kinds_by_exact_text() -> None:
    assert kinds("Call +1 415 555 0100.", allow=("+1 415 555 0100",)) == []
    assert kinds("Call +1 415 555 0100.", allow=("415 555 0100",)) == ["phone number"]


# -- shown() masking -------------------------------------------------------------------------


def test_shown_masks_all_but_three_characters() -> None:
    assert PiiFinding("email address", "dana@example.com").shown() == "email address dan***"
    assert PiiFinding("IBAN", "DE89 3704 0044 0532 0130 00").shown() == "IBAN DE8***"


def test_shown_of_a_short_value() -> None:
    assert PiiFinding("email address", "ab").shown() == "email address ab***"


@pytest.mark.parametrize(
    "text",
    [
        "ravi@example.com",
        "+1 (415) 555-0132",
        "4111 1111 1111 1111",
        "123-45-6789",
        "DE89 3704 0044 0532 0130 00",
    ],
)
def test_shown_never_reveals_more_than_three_characters(text: str) -> None:
    (finding,) = find_pii(f"see {text} here")
    assert finding.text == text
    shown = finding.shown()
    assert shown.startswith(f"{finding.kind} ")
    revealed = shown.removeprefix(f"{finding.kind} ").removesuffix("***")
    assert len(revealed) <= 3
    assert revealed == text[:3]
    assert text[:4] not in shown


def test_findings_are_frozen() -> None:
    finding = PiiFinding("email address", "a@example.com")
    with pytest.raises(AttributeError):
        finding.text = "x"  # type: ignore[misc]
