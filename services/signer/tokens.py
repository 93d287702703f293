"""Link tokens: 256 random bits in the link, only their SHA-256 in the database."""

import hashlib
import hmac
import secrets

__all__ = ["csrf_token", "csrf_valid", "hash_token", "mint_token"]


def mint_token() -> tuple[str, bytes]:
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def csrf_token(secret: bytes, token_hash: bytes, nonce: str) -> str:
    """Binds a form to its link and to the browser's CSRF cookie (``nonce``)."""
    return hmac.new(secret, token_hash + nonce.encode(), hashlib.sha256).hexdigest()


def csrf_valid(secret: bytes, token_hash: bytes, nonce: str, presented: str) -> bool:
    return bool(nonce) and hmac.compare_digest(csrf_token(secret, token_hash, nonce), presented)
