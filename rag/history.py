"""Conversations and feedback, in SQLite under RAG_DATA_DIR.

Messages are linked records: each points to its parent, so a conversation is a chain that
can be resumed (`rag chat --resume`) or reopened in the UI. This database is separate from the
index: rebuilding the index never touches it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path

SCHEMA = [
    # Numbered migrations: append, never edit.
    (
        "CREATE TABLE conversations (id TEXT PRIMARY KEY, title TEXT, user_id TEXT, "
        "created_at REAL, updated_at REAL)"
    ),
    (
        "CREATE TABLE messages (id TEXT PRIMARY KEY, "
        "conversation_id TEXT NOT NULL REFERENCES conversations(id),\n"
        "        parent_id TEXT, role TEXT NOT NULL, content TEXT NOT NULL, payload TEXT, "
        "created_at REAL)"
    ),
    """CREATE INDEX messages_by_conversation ON messages(conversation_id, created_at)""",
    (
        "CREATE TABLE feedback (id TEXT PRIMARY KEY, message_id TEXT, user_id TEXT, "
        "rating INTEGER, question TEXT,\n"
        "        answer TEXT, citations TEXT, quality REAL, comment TEXT, created_at REAL)"
    ),
]


class History:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        with self._lock, self.db:
            self.db.execute("CREATE TABLE IF NOT EXISTS migrations (n INTEGER PRIMARY KEY)")
            done = {n for (n,) in self.db.execute("SELECT n FROM migrations")}
            for n, sql in enumerate(SCHEMA):
                if n not in done:
                    self.db.execute(sql)
                    self.db.execute("INSERT INTO migrations VALUES (?)", (n,))

    def new_conversation(self, title: str = "", user_id: str = "") -> str:
        cid = uuid.uuid4().hex
        now = time.time()
        with self._lock, self.db:
            self.db.execute(
                "INSERT INTO conversations VALUES (?,?,?,?,?)",
                (cid, title[:120], user_id, now, now),
            )
        return cid

    def add(
        self, conversation_id: str, role: str, content: str, payload: dict | None = None
    ) -> str:
        mid = uuid.uuid4().hex
        now = time.time()
        with self._lock, self.db:
            row = self.db.execute(
                "SELECT id FROM messages WHERE conversation_id=? "
                "ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (conversation_id,),
            ).fetchone()
            self.db.execute(
                "INSERT INTO messages VALUES (?,?,?,?,?,?,?)",
                (
                    mid,
                    conversation_id,
                    row[0] if row else None,
                    role,
                    content,
                    json.dumps(payload) if payload else None,
                    now,
                ),
            )
            self.db.execute(
                "UPDATE conversations SET updated_at=?, title=COALESCE(NULLIF(title,''), ?) "
                "WHERE id=?",
                (now, content[:80] if role == "user" else "", conversation_id),
            )
        return mid

    def messages(self, conversation_id: str) -> list[dict]:
        """The chain from the first message to the last, following parent links."""
        with self._lock:
            rows = self.db.execute(
                "SELECT id, parent_id, role, content, payload, created_at FROM messages "
                "WHERE conversation_id=?",
                (conversation_id,),
            ).fetchall()
        by_parent = {r[1]: r for r in rows}
        chain, parent = [], None
        while parent in by_parent:
            r = by_parent[parent]
            chain.append(
                {
                    "id": r[0],
                    "role": r[2],
                    "content": r[3],
                    "payload": json.loads(r[4]) if r[4] else None,
                    "created_at": r[5],
                }
            )
            parent = r[0]
        return chain

    def conversations(self, limit: int = 50, user_id: str | None = None) -> list[dict]:
        sql = "SELECT id, title, created_at, updated_at FROM conversations"
        args: tuple = ()
        if user_id is not None:
            sql += " WHERE user_id=?"
            args = (user_id,)
        with self._lock:
            rows = self.db.execute(
                sql + " ORDER BY updated_at DESC LIMIT ?", (*args, limit)
            ).fetchall()
        return [{"id": r[0], "title": r[1], "created_at": r[2], "updated_at": r[3]} for r in rows]

    def latest_conversation(self) -> str | None:
        found = self.conversations(limit=1)
        return found[0]["id"] if found else None

    def add_feedback(
        self,
        message_id: str,
        rating: int,
        question: str,
        answer: str,
        citations: list,
        user_id: str = "",
        quality: float | None = None,
        comment: str = "",
    ) -> str:
        fid = uuid.uuid4().hex
        with self._lock, self.db:
            self.db.execute(
                "INSERT INTO feedback VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    fid,
                    message_id,
                    user_id,
                    rating,
                    question,
                    answer,
                    json.dumps(citations),
                    quality,
                    comment,
                    time.time(),
                ),
            )
        return fid

    def feedback(self) -> list[dict]:
        with self._lock:
            rows = self.db.execute(
                "SELECT id, message_id, user_id, rating, question, answer, citations, quality, "
                "comment, created_at FROM feedback ORDER BY created_at"
            ).fetchall()
        keys = [
            "id",
            "message_id",
            "user_id",
            "rating",
            "question",
            "answer",
            "citations",
            "quality",
            "comment",
            "created_at",
        ]
        return [dict(zip(keys, r), citations=json.loads(r[6] or "[]")) for r in rows]

    def close(self) -> None:
        self.db.close()
