"""The verification code's own rules: its check digit catches typos, what a citizen types is read leniently,
the stored hash depends on the installation's key, and wrong attempts are counted per subscriber network."""

from services.signer.check import client_scope
from services.signer.verification import (
    code_key,
    footer_text,
    format_code,
    new_code,
    new_secret,
    read_code,
    read_secret,
    secret_hash,
)


def test_every_single_mistyped_digit_and_every_swap_of_neighbours_is_caught() -> None:
    """For 200 random codes, each of the 16x9 one-digit changes and each swap of two different neighbours fails the check digit."""
    for _ in range(200):
        code = new_code()
        assert read_code(code) == code
        for position in range(16):
            for digit in "0123456789":
                if digit != code[position]:
                    assert read_code(code[:position] + digit + code[position + 1 :]) is None
            if position < 15 and code[position] != code[position + 1]:
                swapped = code[:position] + code[position + 1] + code[position] + code[position + 2 :]
                assert read_code(swapped) is None


def test_codes_are_random_and_typed_codes_may_carry_spaces_dashes_and_dots() -> None:
    """1,000 new codes are all different; a code typed as printed, with dashes or dots, reads as the code."""
    codes = {new_code() for _ in range(1000)}
    assert len(codes) == 1000
    code = codes.pop()
    for typed in (format_code(code), "-".join(format_code(code).split()), f" {'.'.join(format_code(code).split())} "):
        assert read_code(typed) == code
    assert read_code(code[:-1]) is None and read_code("abcd" * 4) is None


def test_a_secret_is_read_in_any_case_with_lookalike_letters_for_digits() -> None:
    """"k7qx m2pa" is K7QXM2PA; O reads as 0, I and L as 1; secrets come from Crockford's 32 symbols."""
    assert read_secret("k7qx m2pa") == read_secret("K7QX-M2PA") == "K7QXM2PA"
    assert read_secret("OIL0") == "0110"
    assert all(len(s) == 8 and set(s) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for s in (new_secret() for _ in range(100)))


def test_the_stored_hash_depends_on_the_installation_key_and_the_code() -> None:
    """The same secret hashes differently under another PARAAF_KEY_SECRET or with another code."""
    code, other = new_code(), new_code()
    key = code_key(b"one long installation secret")
    assert secret_hash(key, code, "K7QXM2PA") != secret_hash(code_key(b"another installation secret"), code, "K7QXM2PA")
    assert secret_hash(key, code, "K7QXM2PA") != secret_hash(key, other, "K7QXM2PA")


def test_the_footer_names_the_check_address_code_and_secret_in_the_signers_language() -> None:
    """Dutch, French and English footers; an unknown language falls back to Dutch."""
    code = new_code()
    assert footer_text("nl", "https://x/check", code, "K7QXM2PA") == (
        f"Echtheid controleren op https://x/check met code {format_code(code)} en geheim K7QX-M2PA"
    )
    assert "le secret K7QX-M2PA" in footer_text("fr", "https://x/check", code, "K7QXM2PA")
    assert footer_text("de", "u", code, "K7QXM2PA") == footer_text("nl", "u", code, "K7QXM2PA")


def test_attempts_are_counted_per_ipv4_address_and_per_ipv6_network() -> None:
    """Two addresses in one IPv6 /64 share a count; an IPv4-mapped address counts as the IPv4 address."""
    assert client_scope("2001:db8:1:2::1") == client_scope("2001:db8:1:2:ffff::9") == "address:2001:db8:1:2::/64"
    assert client_scope("::ffff:192.0.2.7") == client_scope("192.0.2.7") == "address:192.0.2.7"
    assert client_scope("203.0.113.9") != client_scope("203.0.113.10")
