"""`rag users`: the page's accounts (rag/accounts.py). Runs in its own process, beside a
running `rag ui` too: the page reads the accounts file on every login and session check, so a
removed user is signed out at their next click."""

from __future__ import annotations

import getpass
import json
import sys

from rag.accounts import Accounts
from rag.errors import BadInput


def _read_password(name: str) -> str:
    """Typed twice at a terminal; the first line of stdin otherwise (scripts: echo pw | ...)."""
    if sys.stdin.isatty():
        first = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != first:
            raise BadInput("the two passwords differ", "run the command again")
        return first
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise BadInput("no password on stdin", f"run: echo PASSWORD | rag users add {name}")
    return line


def cmd_users(args, settings) -> int:
    accounts = Accounts(settings.accounts_path)
    try:
        if args.action == "list":
            users = accounts.users()
            if args.json:
                sys.stdout.write(json.dumps(users) + "\n")
            elif not users:
                sys.stderr.write("no accounts: the page serves the local user only\n")
            for u in [] if args.json else users:
                sys.stdout.write(f"{u['name']}\t{u['role']}\n")
            return 0
        if not args.name:
            raise BadInput(
                f"rag users {args.action} needs a user name", f"run: rag users {args.action} NAME"
            )
        if args.action == "add":
            role = "admin" if args.admin else "reader"
            accounts.add(args.name, _read_password(args.name), role)
            sys.stderr.write(f"added {args.name} ({role})\n")
        elif args.action == "passwd":
            accounts.set_password(args.name, _read_password(args.name))
            sys.stderr.write(f"changed the password of {args.name}\n")
        elif args.action == "remove":
            accounts.remove(args.name)
            sys.stderr.write(f"removed {args.name}; their sessions end at once\n")
        return 0
    finally:
        accounts.close()
