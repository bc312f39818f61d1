"""Who is rating: a trusted proxy's header counts only with the proxy's secret; st.login's claims; bad names refused."""
import pytest

from medvqa.identity import SECRET_HEADER, Identity, IdentityError, clean_name, signed_in


@pytest.fixture
def proxy(monkeypatch):
    monkeypatch.setenv("MEDVQA_TRUSTED_USER_HEADER", "X-Remote-User")
    monkeypatch.setenv("MEDVQA_PROXY_SECRET", "s3cret-from-nginx")
    monkeypatch.setenv("MEDVQA_ADMINS", "dr-admin, dr-chief")


def test_the_proxy_header_counts_only_with_the_proxy_secret(proxy):
    assert signed_in({"x-remote-user": "dr-lee", SECRET_HEADER.lower(): "s3cret-from-nginx"}, {}) == Identity(
        "dr-lee", True, "proxy")
    assert signed_in({"X-Remote-User": "dr-lee"}, {}) is None  # straight to Streamlit: a forged name, no secret
    assert signed_in({"X-Remote-User": "dr-lee", SECRET_HEADER: "guess"}, {}) is None  # a wrong secret
    assert signed_in({SECRET_HEADER: "s3cret-from-nginx", "X-Remote-User": "  "}, {}) is None  # an empty header


def test_without_configuration_no_header_is_trusted(monkeypatch):
    monkeypatch.delenv("MEDVQA_TRUSTED_USER_HEADER", raising=False)
    monkeypatch.delenv("MEDVQA_PROXY_SECRET", raising=False)
    assert signed_in({"X-Remote-User": "dr-lee", SECRET_HEADER: ""}, {}) is None
    monkeypatch.setenv("MEDVQA_TRUSTED_USER_HEADER", "X-Remote-User")  # a header without a secret: still nobody
    assert signed_in({"X-Remote-User": "dr-lee"}, {}) is None


def test_streamlit_login_gives_the_identity_providers_email():
    claims = {"is_logged_in": True, "email": "lee@hospital.org", "name": "Dr Lee"}
    assert signed_in({}, claims) == Identity("lee@hospital.org", True, "login")
    assert signed_in({}, {"is_logged_in": True, "name": "Dr Lee"}).name == "Dr Lee"
    assert signed_in({}, {"is_logged_in": False}) is None


def test_bad_names_are_refused_plainly(proxy):
    secret = {SECRET_HEADER: "s3cret-from-nginx"}
    with pytest.raises(IdentityError, match="10,000 characters long; at most 128"):
        signed_in({**secret, "X-Remote-User": "x" * 10_000}, {})
    with pytest.raises(IdentityError, match="control characters"):
        signed_in({**secret, "X-Remote-User": "dr-lee\x1b[31m"}, {})
    with pytest.raises(IdentityError, match="empty"):
        clean_name("   ")
    assert clean_name("  dr-lee ") == "dr-lee"


def test_admins_are_signed_in_people_only(proxy):
    assert Identity("dr-admin", True, "proxy").admin and Identity("dr-chief", True, "login").admin
    assert not Identity("dr-admin", False, "typed").admin  # anyone can type a name
    assert not Identity("dr-lee", True, "proxy").admin
