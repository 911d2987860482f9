"""Who is labelling: configured users with bcrypt-hashed passwords, or the user an
authenticating proxy (IAP) names in a trusted header, or, with neither configured, one
local admin. Roles: ``annotator`` labels; ``admin`` also imports, adds labels and retrains.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import yaml

from models import storage
from models.errors import InvalidInput

ROLES = ("annotator", "admin")
LOCAL_USER_NAME = "local"


@dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def load_users(path: str) -> dict[str, dict]:
    """``{name: {"password_hash": ..., "role": ...}}``; an absent file has no users."""
    if not path or not Path(path).exists():
        return {}
    users = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(users, dict):
        raise InvalidInput(f"{path}: expected a mapping of user name to password_hash and role")
    return users


def add_user(path: str, name: str, password: str, role: str) -> None:
    """Adds or replaces ``name`` in the users file, which is written whole or not at all."""
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {ROLES}")
    if not name.strip() or len(password) < 8:
        raise InvalidInput("a user needs a name and a password of at least 8 characters")
    users = load_users(path)
    users[name.strip()] = {"password_hash": bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode(), "role": role}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    storage.replace_atomically(path, yaml.safe_dump(users, sort_keys=True).encode())


def check_password(users: Mapping[str, dict], name: str, password: str) -> User | None:
    entry = users.get(name)
    if not entry or not bcrypt.checkpw(password.encode(), str(entry.get("password_hash", "")).encode()):
        return None
    return User(name, entry.get("role", "annotator"))


def from_header(headers: Mapping[str, str], header: str, admins: list[str]) -> User | None:
    """IAP sends ``accounts.google.com:alice@example.com``; the part after the colon is the user."""
    value = next((v for k, v in headers.items() if k.lower() == header.lower()), "")
    name = value.split(":", 1)[-1].strip()
    if not name:
        return None
    return User(name, "admin" if name in admins else "annotator")
