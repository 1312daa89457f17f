"""The bundle watcher notices edits to a bundle's files and serves only a bundle that loads and passes its tests."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from policies import DEFAULT_BUNDLE, RegorusEngine
from policies.watcher import BundleWatcher

TENANTS = "data/tenants.json"
RULES = "rego/meshgate/mcp.rego"
TESTS = "rego/meshgate/mcp_test.rego"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A copy of the shipped bundle: its rules, tests and data, nothing else."""
    directory = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE / "rego", directory / "rego")
    shutil.copytree(DEFAULT_BUNDLE / "data", directory / "data")
    return directory


def grant_public(bundle: Path, *tools: str) -> None:
    """Let tenant `public` call `tools` too (its shipped tests still pass for any tool but toolbox_hash_text)."""
    path = bundle / TENANTS
    data: dict[str, Any] = json.loads(path.read_text())
    data["meshgate"]["tenants"]["public"]["tools"].extend(tools)
    path.write_text(json.dumps(data, indent=2))


def test_an_unchanged_bundle_is_not_reloaded(bundle: Path) -> None:
    watcher = BundleWatcher(RegorusEngine(bundle))

    assert watcher.check() is None
    assert watcher.last_reload is None


def test_a_data_edit_is_served_with_a_new_revision(bundle: Path) -> None:
    engine = RegorusEngine(bundle)
    watcher = BundleWatcher(engine)
    before = engine.revision

    grant_public(bundle, "echo_echo")
    outcome = watcher.check()

    assert outcome is not None and outcome.ok and outcome.error == ""
    assert outcome.revision == engine.revision != before
    assert watcher.check() is None


def test_a_same_size_rewrite_within_one_timestamp_tick_is_noticed(bundle: Path) -> None:
    path = bundle / TENANTS
    path.write_text(path.read_text())  # freshly written, as an editor's first save
    watcher = BundleWatcher(RegorusEngine(bundle))
    stat = path.stat()

    path.write_text(path.read_text().replace('"servers": ["toolbox"]', '"servers":["toolbox"] ', 1))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert watcher.check() is not None


@pytest.mark.parametrize("name", [TESTS, "rego/meshgate/extra.rego", "data/more.json"])
def test_new_or_edited_rules_tests_and_data_are_noticed(bundle: Path, name: str) -> None:
    watcher = BundleWatcher(RegorusEngine(bundle))
    path = bundle / name
    if name.endswith(".json"):
        path.write_text('{"extra": {"flag": true}}')
    elif path.exists():
        path.write_text(path.read_text() + "\ntest_added if true\n")
    else:
        path.write_text("package meshgate.extra\n\nflag := true\n")

    outcome = watcher.check()

    assert outcome is not None and outcome.ok, outcome


def test_a_deleted_module_is_noticed(bundle: Path) -> None:
    (bundle / "rego/meshgate/extra.rego").write_text("package meshgate.extra\n\nflag := true\n")
    engine = RegorusEngine(bundle)
    watcher = BundleWatcher(engine)
    before = engine.revision

    (bundle / "rego/meshgate/extra.rego").unlink()

    outcome = watcher.check()
    assert outcome is not None and outcome.ok and engine.revision != before


def test_files_outside_rego_and_data_are_ignored(bundle: Path) -> None:
    watcher = BundleWatcher(RegorusEngine(bundle))

    (bundle / "README.md").write_text("notes")
    (bundle / "data" / "notes.txt").write_text("notes")
    (bundle / "rego" / "meshgate" / "mcp.rego.bak").write_text("not rego")

    assert watcher.check() is None


def test_a_syntax_error_is_rejected_with_its_place_and_the_last_good_bundle_serves(bundle: Path) -> None:
    engine = RegorusEngine(bundle)
    watcher = BundleWatcher(engine)
    before = engine.revision
    rules = bundle / RULES

    rules.write_text(rules.read_text().replace("decision := {", "decision := {{", 1))
    outcome = watcher.check()

    assert outcome is not None and not outcome.ok
    assert re.match(rf"{RULES}:\d+:\d+: expecting", outcome.error), outcome
    assert outcome.revision == engine.revision == before


def test_invalid_json_is_rejected_with_its_place(bundle: Path) -> None:
    engine = RegorusEngine(bundle)
    watcher = BundleWatcher(engine)

    (bundle / TENANTS).write_text('{"meshgate": ')
    outcome = watcher.check()

    assert outcome is not None and not outcome.ok
    assert f"{TENANTS}:1:14: invalid JSON" in outcome.error


def test_a_bundle_whose_rego_tests_fail_is_rejected_and_its_fix_is_served(bundle: Path) -> None:
    engine = RegorusEngine(bundle)
    watcher = BundleWatcher(engine)
    before = engine.revision

    grant_public(bundle, "toolbox_hash_text")
    rejected = watcher.check()
    (bundle / TENANTS).write_text((DEFAULT_BUNDLE / TENANTS).read_text())
    grant_public(bundle, "echo_echo")
    fixed = watcher.check()

    assert rejected is not None and not rejected.ok
    assert re.match(r"\d+ Rego test\(s\) failed: ", rejected.error), rejected
    assert "data.meshgate.mcp_test.test_public_tenant_may_call_only_its_listed_tools" in rejected.error
    assert rejected.revision == before
    assert fixed is not None and fixed.ok and fixed.revision == engine.revision != before
    assert watcher.last_reload == fixed
