"""Accounts for the page: users with scrypt-hashed passwords and a role, in their own SQLite
file under RAG_DATA_DIR (`accounts.sqlite3`, readable by its owner only). The page's sessions
and who may do what are rag/ui/access.py's.

Two roles. A reader asks and sees their own conversations. An admin also adds, replaces and
removes documents. `rag users add NAME [--admin]` creates them; with no account at all the
page is the single local user's (loopback only), as before.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
from pathlib import Path

from rag.errors import BadInput

ROLES = ("reader", "admin")
MIN_PASSWORD = 8
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
# scrypt at 16 MiB of memory per check: slow to guess offline, ~50 ms to log in.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, maxmem=64 * 1024 * 1024, **_SCRYPT)


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name):
        raise BadInput(
            f"unusable user name {name[:70]!r}",
            "use 1-64 letters, digits, dots, dashes, underscores or @, starting with a letter "
            "or digit",
        )
    return name


def check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise BadInput(
            f"the password is shorter than {MIN_PASSWORD} characters", "choose a longer one"
        )
    return password


class Accounts:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        self._lock = threading.Lock()
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=10)
        if fresh:
            os.chmod(self.path, 0o600)  # password hashes: the owner's eyes only
        with self._lock, self.db:
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY COLLATE NOCASE, "
                "role TEXT NOT NULL, salt BLOB NOT NULL, hash BLOB NOT NULL, created_at REAL)"
            )

    # -- managing -------------------------------------------------------------------------
    def add(self, name: str, password: str, role: str = "reader") -> None:
        name, password = check_name(name), check_password(password)
        if role not in ROLES:
            raise BadInput(f"unknown role {role!r}", "use reader or admin")
        salt = secrets.token_bytes(16)
        try:
            with self._lock, self.db:
                self.db.execute(
                    "INSERT INTO users VALUES (?,?,?,?,?)",
                    (name, role, salt, _hash(password, salt), time.time()),
                )
        except sqlite3.IntegrityError:
            raise BadInput(
                f"a user named {name} exists already", f"run: rag users passwd {name}"
            ) from None

    def set_password(self, name: str, password: str) -> None:
        password = check_password(password)
        salt = secrets.token_bytes(16)
        with self._lock, self.db:
            changed = self.db.execute(
                "UPDATE users SET salt=?, hash=? WHERE name=?", (salt, _hash(password, salt), name)
            ).rowcount
        if not changed:
            raise BadInput(f"no user named {name}", "run: rag users list")

    def remove(self, name: str) -> None:
        with self._lock, self.db:
            gone = self.db.execute("DELETE FROM users WHERE name=?", (name,)).rowcount
        if not gone:
            raise BadInput(f"no user named {name}", "run: rag users list")

    def users(self) -> list[dict]:
        with self._lock:
            rows = self.db.execute(
                "SELECT name, role, created_at FROM users ORDER BY name"
            ).fetchall()
        return [{"name": n, "role": r, "created_at": c} for n, r, c in rows]

    def __len__(self) -> int:
        with self._lock:
            return self.db.execute("SELECT COUNT(*) FROM users").fetchone()[0]

    # -- checking -------------------------------------------------------------------------
    def verify(self, name: str, password: str) -> bool:
        with self._lock:
            row = self.db.execute(
                "SELECT salt, hash FROM users WHERE name=?", ((name or "").strip(),)
            ).fetchone()
        if row is None:
            _hash(password or "", b"\0" * 16)  # the same work either way: no timing oracle
            return False
        return hmac.compare_digest(_hash(password or "", row[0]), row[1])

    def stored_name(self, name: str | None) -> str | None:
        """The name as the account was made ("Alice" for a login typed "ALICE"): what
        conversations are filed under, so the way a name is typed does not split them."""
        if not name:
            return None
        with self._lock:
            row = self.db.execute("SELECT name FROM users WHERE name=?", (name.strip(),)).fetchone()
        return row[0] if row else None

    def role(self, name: str | None) -> str | None:
        if not name:
            return None
        with self._lock:
            row = self.db.execute("SELECT role FROM users WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self.db.close()
