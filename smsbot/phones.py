"""Phone numbers: E.164 normalisation with ``phonenumbers`` and masking for logs and screens."""

from __future__ import annotations

import phonenumbers

WHATSAPP_PREFIX = "whatsapp:"


class InvalidPhoneError(ValueError):
    """Not a valid phone number; the message says what was wrong without echoing it in full."""


def normalise_phone(raw: str, region: str = "US") -> str:
    """Return ``raw`` as E.164 (``+15550100001``), accepting national formats for ``region``."""
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneError("not a phone number") from None
    # IS_POSSIBLE_LOCAL_ONLY ("555-0100" in the US) is "possible" but has no area code, so
    # its E.164 form would be a wrong number: only a full-length number is accepted.
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise InvalidPhoneError("not a possible phone number (wrong length)")
    # Twilio's magic test numbers (+1500555…) and 555 fiction numbers are "possible" but not
    # "valid"; accept possible numbers so local trials and tests work, reject garbage.
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_address(raw: str, region: str = "US") -> tuple[str, str]:
    """Split a Twilio ``From`` into (E.164 phone, channel ``sms``|``whatsapp``)."""
    raw = raw.strip()
    if raw.lower().startswith(WHATSAPP_PREFIX):
        return normalise_phone(raw[len(WHATSAPP_PREFIX) :], region), "whatsapp"
    return normalise_phone(raw, region), "sms"


def mask_phone(phone: str | None) -> str:
    """Keep only the last four digits: enough for staff to recognise, useless to a leak."""
    if not phone:
        return "-"
    digits = "".join(ch for ch in phone if ch.isdigit())
    return "•••" + digits[-4:] if len(digits) >= 4 else "•••"


def display_phone(phone: str) -> str:
    """An E.164 number as people read it (``+1 555-010-0001``), for staff who call it back."""
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return phone
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
