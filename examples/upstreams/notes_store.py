"""A small SQLite-backed notes store for the `notes` example server.

Protocol-free: the server module adapts it to MCP tools, resources and prompts. Each operation
opens its own connection, because MCPServer runs sync handlers on worker threads and a sqlite3
connection must not cross threads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterable
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS note_tags (
    note_id INTEGER NOT NULL REFERENCES notes(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (note_id, position)
);
"""

# Matching happens in Python (casefold) because SQLite's lower() folds ASCII only.
_SEARCH = """
SELECT id FROM notes
WHERE contains_folded(title, :q) OR contains_folded(body, :q)
   OR EXISTS (SELECT 1 FROM note_tags t WHERE t.note_id = notes.id AND contains_folded(t.tag, :q))
ORDER BY id DESC LIMIT :limit
"""


@dataclass(frozen=True)
class Note:
    """One stored note; `created_at` is an ISO-8601 UTC timestamp."""

    id: int
    title: str
    body: str
    tags: tuple[str, ...]
    created_at: str


@dataclass(frozen=True)
class NoteSummary:
    """The id and title of a note, as listed in the index."""

    id: int
    title: str


def _contains_folded(haystack: str, needle: str) -> bool:
    return needle.casefold() in haystack.casefold()


def normalize_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Strip tags, drop empty ones and duplicates, keeping first-seen order."""
    seen: dict[str, None] = {}
    for tag in tags:
        cleaned = tag.strip()
        if cleaned:
            seen.setdefault(cleaned, None)
    return tuple(seen)


class NoteStore:
    """Notes persisted in one SQLite file; the parent directory is created on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Generator[sqlite3.Connection, None, None]:
        with closing(sqlite3.connect(self.path)) as conn:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.create_function("contains_folded", 2, _contains_folded, deterministic=True)
            with conn:
                yield conn

    def add(self, title: str, body: str, tags: Iterable[str] = ()) -> Note:
        """Store a new note and return it with its assigned id."""
        created_at = datetime.now(UTC).isoformat(timespec="seconds")
        clean_tags = normalize_tags(tags)
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT INTO notes (title, body, created_at) VALUES (?, ?, ?)", (title, body, created_at)
            )
            note_id = cursor.lastrowid
            assert note_id is not None
            conn.executemany(
                "INSERT INTO note_tags (note_id, position, tag) VALUES (?, ?, ?)",
                [(note_id, position, tag) for position, tag in enumerate(clean_tags)],
            )
        return Note(id=note_id, title=title, body=body, tags=clean_tags, created_at=created_at)

    def get(self, note_id: int) -> Note | None:
        """The note with `note_id`, or None."""
        with self._connect() as conn:
            return self._load(conn, note_id)

    def search(self, query: str, limit: int) -> list[Note]:
        """Notes whose title, body or a tag contains `query` (case-insensitive), newest first."""
        with self._connect() as conn:
            ids = [row[0] for row in conn.execute(_SEARCH, {"q": query, "limit": limit})]
            return [note for note_id in ids if (note := self._load(conn, note_id)) is not None]

    def delete(self, note_id: int) -> Note | None:
        """Remove a note and return what it was, or None when there was no such note."""
        with self._connect() as conn:
            note = self._load(conn, note_id)
            if note is not None:
                conn.execute("DELETE FROM notes WHERE id = ?", (note_id,))
            return note

    def index(self) -> list[NoteSummary]:
        """Every note's id and title, oldest first."""
        with self._connect() as conn:
            rows = conn.execute("SELECT id, title FROM notes ORDER BY id").fetchall()
        return [NoteSummary(id=row[0], title=row[1]) for row in rows]

    @staticmethod
    def _load(conn: sqlite3.Connection, note_id: int) -> Note | None:
        row = conn.execute("SELECT id, title, body, created_at FROM notes WHERE id = ?", (note_id,)).fetchone()
        if row is None:
            return None
        tags = conn.execute("SELECT tag FROM note_tags WHERE note_id = ? ORDER BY position", (note_id,))
        return Note(id=row[0], title=row[1], body=row[2], tags=tuple(tag for (tag,) in tags), created_at=row[3])
