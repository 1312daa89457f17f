from __future__ import annotations

import sys

import pytest

from meshgate.errors import MissingDependency
from registry.postgres_store import PostgresStore


def test_without_psycopg_the_store_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` raise ImportError
    with pytest.raises(MissingDependency) as caught:
        PostgresStore("postgresql://127.0.0.1/test")
    assert caught.value.data == {"extra": "postgres"}
