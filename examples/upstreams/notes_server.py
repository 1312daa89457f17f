"""The `notes` example upstream: a persistent notes store served over stdio.

Run `python examples/upstreams/notes_server.py [--db PATH]`; the database path comes from `--db`,
else `$NOTES_DB`, else `./.meshgate/notes.db`. `build_server` gives the same server in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from pydantic import Field

if __package__ in (None, ""):  # run as a script: make the `examples` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.upstreams.notes_store import Note, NoteStore  # noqa: E402

DEFAULT_DB = Path(".meshgate") / "notes.db"

Title = Annotated[str, Field(min_length=1, max_length=200, description="Short title of the note.")]
Body = Annotated[str, Field(max_length=100_000, description="Free-form text of the note.")]
Tags = Annotated[tuple[str, ...], Field(max_length=20, description="Labels for finding the note later.")]
NoteId = Annotated[int, Field(ge=1, description="The id returned by add_note or search_notes.")]
Query = Annotated[str, Field(max_length=200, description="Text to look for; empty lists the newest notes.")]
Limit = Annotated[int, Field(ge=1, le=100, description="Most notes to return.")]
Topic = Annotated[str, Field(min_length=1, max_length=200, description="What the summary should be about.")]


def build_server(store: NoteStore) -> MCPServer:
    """The `notes` MCP server over `store`."""
    instructions = "A persistent notebook: add, search, read and delete."
    server = MCPServer("notes", version="1.0.0", instructions=instructions, log_level="WARNING")

    def require(note: Note | None, note_id: int) -> Note:
        if note is None:
            raise ToolError(f"note {note_id} not found")
        return note

    @server.tool()
    def add_note(title: Title, body: Body, tags: Tags = ()) -> Note:
        """Save a new note and return it, including its id and creation time."""
        return store.add(title, body, tags)

    @server.tool()
    def search_notes(query: Query, limit: Limit = 10) -> list[Note]:
        """Find notes whose title, body or tags contain the query, ignoring case; newest first."""
        return store.search(query, limit)

    @server.tool()
    def read_note(note_id: NoteId) -> Note:
        """Return one note by id."""
        return require(store.get(note_id), note_id)

    @server.tool()
    def delete_note(note_id: NoteId) -> Note:
        """Delete a note by id and return the note that was removed."""
        return require(store.delete(note_id), note_id)

    @server.resource("notes://index", name="index", mime_type="application/json")
    def notes_index() -> str:
        """Every note's id and title, oldest first, as a JSON array."""
        return json.dumps([asdict(summary) for summary in store.index()])

    @server.resource("notes://note/{note_id}", name="note", mime_type="application/json")
    def note_resource(note_id: str) -> str:
        """One note as a JSON object."""
        note = store.get(int(note_id)) if note_id.isdigit() else None
        if note is None:
            raise ResourceNotFoundError(f"note {note_id} not found")
        return json.dumps(asdict(note))

    @server.prompt()
    def summarize_notes(topic: Topic) -> str:
        """Ask the model to summarize the stored notes about a topic."""
        notes = store.search(topic, 20)
        if not notes:
            return f"There are no notes about {topic!r}. Say so, and suggest what notes to take."
        listed = "\n\n".join(
            f"## {note.title} (#{note.id}, tags: {', '.join(note.tags) or 'none'})\n{note.body}" for note in notes
        )
        return f"Summarize what these notes say about {topic!r}. Cite notes by #id.\n\n{listed}"

    return server


def main(argv: list[str] | None = None) -> None:
    """Serve the notes store on stdio."""
    parser = argparse.ArgumentParser(description=__doc__)
    # The example is a standalone process, so it reads its one setting from the environment itself.
    env_db = os.environ.get("NOTES_DB")  # noqa: TID251
    parser.add_argument("--db", type=Path, default=Path(env_db) if env_db else DEFAULT_DB, help="SQLite file")
    args = parser.parse_args(argv)
    build_server(NoteStore(args.db)).run()


if __name__ == "__main__":
    main()
