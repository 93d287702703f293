"""The verification code every signed PDF carries on each page, and the secret
printed beside it: pure rules, no I/O.

The code is 16 digits, shown as four groups of four: 15 random digits and a
Damm check digit, which catches every single mistyped digit and every swap of
two neighbouring digits, so a typo is told apart from a wrong code without
asking the database. The code is random (never derived from a document id) and
unique over the installation. It finds the document; the secret (8 characters
of Crockford's base 32, ~40 bits, printed beside the code) proves the reader
holds it. Only a keyed hash of the secret is stored: the key is derived from
PARAAF_KEY_SECRET, so someone who reads the database cannot try every secret
offline, and with the code alone no one gets anything.
"""

import hashlib
import hmac
import re
import secrets

__all__ = [
    "CODE_ON_PAGE",
    "code_key",
    "footer_text",
    "format_code",
    "format_secret",
    "new_code",
    "new_secret",
    "read_code",
    "read_secret",
    "secret_hash",
    "valid_code",
]

_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
CODE_LENGTH, SECRET_LENGTH = 16, 8
# How the code reads in a page's text (the footer says "code 1234 5678 9012 3456" in every language).
CODE_ON_PAGE = re.compile(r"\bcode (\d{4} \d{4} \d{4} \d{4})\b")

# The footer, in the language of the document's first signer.
_FOOTER = {
    "nl": "Echtheid controleren op {url} met code {code} en geheim {secret}",
    "fr": "Vérifier l'authenticité sur {url} avec le code {code} et le secret {secret}",
    "en": "Check this document at {url} with code {code} and secret {secret}",
}


def _damm(digits: str) -> int:
    interim = 0
    for digit in digits:
        interim = _DAMM[interim][int(digit)]
    return interim


def new_code() -> str:
    """16 digits, the last one a check digit."""
    body = "".join(secrets.choice("0123456789") for _ in range(CODE_LENGTH - 1))
    return body + str(_damm(body))


def valid_code(code: str) -> bool:
    return len(code) == CODE_LENGTH and code.isdigit() and _damm(code) == 0


def read_code(typed: str) -> str | None:
    """The code as typed (spaces, dashes and dots allowed), or None when it cannot be a code (a typo)."""
    code = re.sub(r"[\s.\-]", "", typed)
    return code if valid_code(code) else None


def format_code(code: str) -> str:
    return " ".join(code[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def new_secret() -> str:
    return "".join(secrets.choice(_CROCKFORD) for _ in range(SECRET_LENGTH))


def read_secret(typed: str) -> str:
    """The secret as typed, in any case, with spaces and dashes, O for 0 and I or L for 1."""
    return re.sub(r"[\s\-]", "", typed).upper().translate(_LOOKALIKES)[:64]


def format_secret(secret: str) -> str:
    return f"{secret[:4]}-{secret[4:]}"


def code_key(key_secret: bytes) -> bytes:
    """The key secrets are hashed under, derived from PARAAF_KEY_SECRET (never stored)."""
    return hmac.new(key_secret, b"paraaf-verification-secret", hashlib.sha256).digest()


def secret_hash(key: bytes, code: str, secret: str) -> bytes:
    """Bound to the code too, so one stored hash says nothing about another document's secret."""
    return hmac.new(key, f"{code}:{secret}".encode(), hashlib.sha256).digest()


def footer_text(language: str, check_url: str, code: str, secret: str) -> str:
    template = _FOOTER.get(language, _FOOTER["nl"])
    return template.format(url=check_url, code=format_code(code), secret=format_secret(secret))
