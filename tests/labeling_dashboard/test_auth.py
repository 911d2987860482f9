"""Users: bcrypt-hashed passwords in a file, or the user an authenticating proxy names."""

import pytest

from labeling_dashboard.auth import add_user, check_password, from_header, load_users
from models.errors import InvalidInput


def test_a_configured_user_signs_in_with_the_right_password_only(tmp_path):
    path = str(tmp_path / "users.yaml")
    add_user(path, "ann", "correct horse", "admin")
    users = load_users(path)
    assert users["ann"]["password_hash"].startswith("$2")
    assert check_password(users, "ann", "correct horse").admin
    assert check_password(users, "ann", "wrong") is None and check_password(users, "bob", "x") is None


def test_weak_passwords_and_unknown_roles_are_refused(tmp_path):
    with pytest.raises(InvalidInput, match="8 characters"):
        add_user(str(tmp_path / "u.yaml"), "ann", "short", "annotator")
    with pytest.raises(InvalidInput, match="role 'root'"):
        add_user(str(tmp_path / "u.yaml"), "ann", "long enough", "root")


def test_the_proxy_header_names_the_user_and_admins_are_listed():
    headers = {"x-goog-authenticated-user-email": "accounts.google.com:ann@example.com"}
    user = from_header(headers, "X-Goog-Authenticated-User-Email", ["boss@example.com"])
    assert (user.name, user.role) == ("ann@example.com", "annotator")
    boss = from_header(
        {"X-Goog-Authenticated-User-Email": "boss@example.com"}, "X-Goog-Authenticated-User-Email", ["boss@example.com"]
    )
    assert boss.admin
    assert from_header({}, "X-Goog-Authenticated-User-Email", []) is None
