"""Accounts (rag/accounts.py), the page's access rules (rag/ui/access.py) and `rag users`.
No model is involved; the browser tests with two accounts are in tests/test_ui_e2e.py."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys

import pytest

from rag.accounts import Accounts
from rag.errors import BadInput
from rag.ui.access import ExpiringSessions, PageAccess


@pytest.fixture
def accounts(tmp_path):
    acc = Accounts(tmp_path / "accounts.sqlite3")
    acc.add("alice", "correct horse", "admin")
    acc.add("bob", "battery staple")
    yield acc
    acc.close()


def test_passwords_are_checked_and_stored_only_as_salted_hashes(accounts, tmp_path):
    assert accounts.verify("alice", "correct horse")
    assert not accounts.verify("alice", "battery staple")
    assert not accounts.verify("nobody", "correct horse")
    assert not accounts.verify("alice", "")
    raw = (tmp_path / "accounts.sqlite3").read_bytes()
    assert b"correct horse" not in raw and b"battery staple" not in raw
    salts = [
        r[0]
        for r in sqlite3.connect(tmp_path / "accounts.sqlite3").execute("SELECT salt FROM users")
    ]
    assert len(set(salts)) == 2  # a salt of its own per user
    assert stat.S_IMODE(os.stat(tmp_path / "accounts.sqlite3").st_mode) == 0o600


def test_roles_names_and_passwords(accounts):
    assert (accounts.role("alice"), accounts.role("bob"), accounts.role("carol")) == (
        "admin",
        "reader",
        None,
    )
    assert accounts.role("ALICE") == "admin"  # names are case-insensitive, like logins
    with pytest.raises(BadInput, match="exists already"):
        accounts.add("Alice", "another password")
    with pytest.raises(BadInput, match="shorter than 8"):
        accounts.add("carol", "short")
    for bad in ("", "../x", "a b", "-dash", "x" * 65):
        with pytest.raises(BadInput, match="unusable user name"):
            accounts.add(bad, "long enough password")
    with pytest.raises(BadInput, match="unknown role"):
        accounts.add("carol", "long enough password", "root")


def test_password_change_and_removal(accounts):
    accounts.set_password("bob", "a new passphrase")
    assert accounts.verify("bob", "a new passphrase") and not accounts.verify(
        "bob", "battery staple"
    )
    accounts.remove("bob")
    assert accounts.role("bob") is None and not accounts.verify("bob", "a new passphrase")
    with pytest.raises(BadInput, match="no user named bob"):
        accounts.remove("bob")
    assert [u["name"] for u in accounts.users()] == ["alice"]


def test_sessions_lapse_and_end_with_their_account(accounts, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("rag.ui.access.time.monotonic", lambda: clock[0])
    sessions = ExpiringSessions(60, lambda name: accounts.role(name) is not None)
    sessions["t-alice"] = "alice"
    sessions["t-bob"] = "bob"
    assert sessions.get("t-alice") == "alice" and "t-bob" in sessions
    clock[0] += 59
    assert sessions.get("t-alice") == "alice"
    accounts.remove("bob")
    assert sessions.get("t-bob") is None and "t-bob" not in sessions
    clock[0] += 2
    assert sessions.get("t-alice") is None and "t-alice" not in sessions
    with pytest.raises(KeyError):
        sessions["t-alice"]
    assert sessions.get("never-issued") is None


def test_a_login_is_known_by_its_account_name_however_it_was_typed(accounts):
    page = PageAccess(accounts)
    sessions = ExpiringSessions(60, page.still_valid, page.login_name)
    sessions["t1"] = "ALICE"
    sessions["t2"] = " alice"
    assert sessions.get("t1") == sessions.get("t2") == "alice"  # one owner of her conversations
    assert accounts.stored_name("Bob") == "bob" and accounts.stored_name("carol") is None


def test_lapsed_sessions_are_cleared_at_the_next_login(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("rag.ui.access.time.monotonic", lambda: clock[0])
    sessions = ExpiringSessions(60)
    sessions["old"] = "alice"
    clock[0] += 61
    sessions["new"] = "bob"
    assert dict.keys(sessions) == {"new"} and set(sessions._issued) == {"new"}


def test_page_access_rules(accounts):
    open_page = PageAccess()
    assert not open_page.enabled and open_page.role(None) == "admin"  # the one local user
    page = PageAccess(accounts)
    assert page.enabled
    assert page.check("alice", "correct horse") and not page.check("alice", "nope")
    assert (page.role("alice"), page.role("bob"), page.role(None)) == ("admin", "reader", None)
    page.require_admin("alice")
    for who in ("bob", None, "mallory"):
        with pytest.raises(BadInput, match="only an admin"):
            page.require_admin(who)
    shared = PageAccess(None, ("ops", "shared-secret"))
    assert shared.check("ops", "shared-secret") and not shared.check("ops", "shared-secre")
    assert shared.role("ops") == "admin" and shared.role("alice") is None


def test_removing_the_last_account_locks_the_page_rather_than_opening_it(accounts):
    page = PageAccess(accounts)
    accounts.remove("alice")
    accounts.remove("bob")
    assert page.enabled and page.role(None) is None and page.role("alice") is None


def _rag(args, data, stdin=""):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_DATA_DIR"] = str(data)
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", "users", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_rag_users_command(tmp_path):
    data = tmp_path / "data"
    assert _rag(["add", "alice", "--admin"], data, "correct horse\n").returncode == 0
    assert _rag(["add", "bob"], data, "battery staple\n").returncode == 0
    listed = _rag(["list"], data)
    assert listed.stdout == "alice\tadmin\nbob\treader\n"
    again = _rag(["add", "bob"], data, "battery staple\n")
    assert again.returncode == 2
    assert (
        again.stderr == "rag: error: a user named bob exists already. run: rag users passwd bob\n"
    )
    short = _rag(["add", "carol"], data, "short\n")
    assert (
        short.returncode == 2 and short.stderr.count("\n") == 1 and "8 characters" in short.stderr
    )
    empty = _rag(["add", "carol"], data, "")
    assert empty.returncode == 2 and "no password on stdin" in empty.stderr
    assert _rag(["passwd", "bob"], data, "a new passphrase\n").returncode == 0
    assert _rag(["remove", "bob"], data).returncode == 0
    acc = Accounts(data / "accounts.sqlite3")
    assert [u["name"] for u in acc.users()] == ["alice"]
    assert acc.verify("alice", "correct horse")
    acc.close()
