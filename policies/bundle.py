"""Reading a policy bundle directory: its Rego modules, its merged data document and its revision.

Layout: `<dir>/rego/**/*.rego` (modules; `*_test.rego` only when tests are asked for) and
`<dir>/data/*.json`. Engine-independent: the engines and the Rego test runner build on it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshgate.errors import PolicyBundleInvalid

TEST_SUFFIX = "_test.rego"


@dataclass(frozen=True, slots=True)
class RegoModule:
    name: str
    """The path relative to the bundle directory, POSIX style (`rego/meshgate/mcp.rego`)."""
    path: Path
    source: str


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    directory: Path
    modules: tuple[RegoModule, ...]
    data_json: str
    """Every `data/*.json` merged into one `data` document (see `load_bundle`)."""
    revision: str


def load_bundle(directory: Path, *, include_tests: bool = False) -> PolicyBundle:
    """Read a bundle directory; nothing is parsed as Rego here.

    Data convention: each `data/*.json` file holds a JSON object whose top-level keys are
    roots under `data` (`{"meshgate": {"tenants": ...}}` is `data.meshgate.tenants`). Files are
    merged in name order, objects deeply; a value defined by two files is an error, never an
    override, so the result does not depend on which file wins.

    The revision is the first 12 hex digits of a sha256 over the sorted bundle-relative names
    and contents of the files read, so it moves with the bundle and not with its location.

    Raises:
        PolicyBundleInvalid: no Rego module, unreadable or non-UTF-8 files, invalid JSON, a data
            file that is not an object, or a data value defined twice.
    """
    directory = Path(directory)
    rego_paths = sorted(
        p for p in (directory / "rego").rglob("*.rego") if include_tests or not p.name.endswith(TEST_SUFFIX)
    )
    if not rego_paths:
        raise PolicyBundleInvalid(f"no .rego modules under {directory / 'rego'}", bundle=str(directory))
    data_paths = sorted((directory / "data").glob("*.json"))

    digest = hashlib.sha256()
    texts: dict[Path, str] = {}
    for path in sorted([*rego_paths, *data_paths], key=lambda p: p.relative_to(directory).as_posix()):
        raw = _read(path)
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0" + raw + b"\0")
        try:
            texts[path] = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyBundleInvalid(f"{path}: not UTF-8: {exc}", bundle=str(directory)) from exc

    modules = tuple(RegoModule(p.relative_to(directory).as_posix(), p, texts[p]) for p in rego_paths)
    data: dict[str, Any] = {}
    for path in data_paths:
        _merge(data, _parse_data(path, texts[path]), "data", path)
    return PolicyBundle(directory, modules, json.dumps(data, sort_keys=True), digest.hexdigest()[:12])


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PolicyBundleInvalid(f"{path}: {exc.strerror}", bundle=str(path.parent)) from exc


def _parse_data(path: Path, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyBundleInvalid(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise PolicyBundleInvalid(f"{path}: a data file must hold a JSON object, not {type(value).__name__}")
    return value  # pyright: ignore[reportUnknownVariableType]


def _merge(into: dict[str, Any], new: dict[str, Any], where: str, path: Path) -> None:
    for key, value in new.items():
        old = into.get(key)
        if key not in into:
            into[key] = value
        elif isinstance(old, dict) and isinstance(value, dict):
            _merge(old, value, f"{where}.{key}", path)  # pyright: ignore[reportUnknownArgumentType]
        else:
            raise PolicyBundleInvalid(f"{path}: {where}.{key} is already defined by an earlier data file")
