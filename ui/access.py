"""Who may do what on the page. No Gradio here, so the rules are testable.

Without accounts or RAG_UI_AUTH the page is the one local user's (loopback only, checked at
start-up) and that user may do everything. With them, everyone signs in: accounts made with
`rag users` carry their role; the RAG_UI_AUTH login is an admin."""

from __future__ import annotations

import hmac
import time

from rag.errors import BadInput


class PageAccess:
    """`accounts`: the app's Accounts (RagApp.accounts), or None when there are none."""

    def __init__(self, accounts=None, shared: tuple[str, str] | None = None):
        self.accounts = accounts
        self.shared = shared
        # Decided once, at start-up: removing the last account later must lock everyone out,
        # not open the page to anyone.
        self.enabled = shared is not None or (accounts is not None and len(accounts) > 0)

    def check(self, name: str, password: str) -> bool:
        """Gradio's login callback."""
        if self.shared and hmac.compare_digest(
            f"{name}\0{password}".encode(), f"{self.shared[0]}\0{self.shared[1]}".encode()
        ):
            return True
        return bool(self.accounts and self.accounts.verify(name, password))

    def role(self, name: str | None) -> str | None:
        if not self.enabled:
            return "admin"
        if self.shared and name == self.shared[0]:
            return "admin"
        return self.accounts.role(name) if self.accounts else None

    def login_name(self, name: str) -> str:
        """The one spelling a login is known by from then on."""
        if self.shared and name == self.shared[0]:
            return name
        return (self.accounts.stored_name(name) if self.accounts else None) or name

    def still_valid(self, name: str | None) -> bool:
        return self.role(name) is not None

    def require_admin(self, name: str | None) -> None:
        if self.role(name) != "admin":
            raise BadInput(
                "only an admin can add or remove documents", "ask an admin, or sign in as one"
            )


class ExpiringSessions(dict):
    """The page's login tokens (token → user name) that lapse `ttl_s` after the login, and at
    once when the user is removed. Gradio keeps its tokens in a plain dict on the server app
    and asks it on every request (`get`, `in`); this dict answers those questions with expiry."""

    def __init__(self, ttl_s: float, still_valid=lambda name: True, login_name=lambda n: n):
        super().__init__()
        self.ttl_s = ttl_s
        self.still_valid = still_valid
        self.login_name = login_name
        self._issued: dict[str, float] = {}

    def __setitem__(self, token, name) -> None:
        # A login: the lapsed sessions of everyone go first, so the table does not grow.
        now = time.monotonic()
        for old in [t for t, at in self._issued.items() if now - at > self.ttl_s]:
            dict.pop(self, old, None)
            self._issued.pop(old, None)
        self._issued[token] = now
        super().__setitem__(token, self.login_name(name))

    def _live(self, token) -> bool:
        issued = self._issued.get(token)
        if issued is None or not dict.__contains__(self, token):
            return False
        if time.monotonic() - issued > self.ttl_s or not self.still_valid(dict.get(self, token)):
            dict.pop(self, token, None)
            self._issued.pop(token, None)
            return False
        return True

    def get(self, token, default=None):
        return dict.get(self, token) if self._live(token) else default

    def __getitem__(self, token):
        if not self._live(token):
            raise KeyError(token)
        return dict.__getitem__(self, token)

    def __contains__(self, token) -> bool:
        return self._live(token)

    def __delitem__(self, token) -> None:
        self._issued.pop(token, None)
        super().__delitem__(token)
