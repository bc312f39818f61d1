"""Who is rating: the signed-in person when the dashboard sits behind authentication, else a typed name.

Two ways to sign in, checked in this order:
- Streamlit's own `st.login` (OIDC, configured under `[auth]` in `.streamlit/secrets.toml`): `st.user` carries the
  identity provider's claims; the rater is the email (or the name when there is no email).
- A trusted reverse proxy (nginx, oauth2-proxy, Caddy in front of the hospital's identity provider) that passes the
  signed-in user in the header MEDVQA_TRUSTED_USER_HEADER names. The header counts only when the same request also
  carries the proxy's shared secret (MEDVQA_PROXY_SECRET) in `X-Medvqa-Proxy-Secret`, which the proxy sets and
  overwrites: a request that reaches Streamlit directly cannot claim a name, and a wrong secret neither.
Without either, a typed name is kept for the session and every judgment is stored as unverified.
Admins (MEDVQA_ADMINS, comma-separated) are signed-in people only: a typed name is never an admin.
"""
from __future__ import annotations

import hmac
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from . import config
from .datatypes import MedVQAError

SECRET_HEADER = "X-Medvqa-Proxy-Secret"
MAX_NAME_CHARS = 128


class IdentityError(MedVQAError):
    """A name that cannot be a rater's (empty, too long, control characters)."""


@dataclass(frozen=True)
class Identity:
    name: str
    verified: bool  # signed in (st.login or a trusted proxy), not typed
    source: str  # "login", "proxy" or "typed"

    @property
    def admin(self) -> bool:
        return self.verified and self.name in config.admins()


def clean_name(raw: object) -> str:
    """A rater name as stored: trimmed, at most 128 characters, no control or format characters."""
    name = str(raw or "").strip()
    if not name:
        raise IdentityError("the rater name is empty")
    if len(name) > MAX_NAME_CHARS:
        raise IdentityError(f"the rater name is {len(name):,} characters long; at most {MAX_NAME_CHARS}")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
        raise IdentityError("the rater name holds control characters")
    return name


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((str(v) for k, v in headers.items() if str(k).lower() == wanted), None)


def signed_in(headers: Mapping[str, str] | None, user_info: Mapping | None) -> Identity | None:
    """The signed-in identity of one request, or None (then the page asks for a typed name). IdentityError when a
    trusted header carries a name that cannot be a rater's."""
    user_info = user_info or {}
    if user_info.get("is_logged_in"):
        return Identity(clean_name(user_info.get("email") or user_info.get("name")), True, "login")
    header, secret = config.trusted_user_header(), config.proxy_secret()
    if not header or not secret or not headers:
        return None
    given = _header(headers, SECRET_HEADER)
    if given is None or not hmac.compare_digest(given.encode(), secret.encode()):
        return None
    user = _header(headers, header)
    return None if user is None or not user.strip() else Identity(clean_name(user), True, "proxy")
