"""OPA's own Go evaluator, in-process, behind the same engine seam as regorus.

The library comes from the PyPI wheel `opa-golib-python-bindings` (`scripts/fetch_opa.py` puts
it in `.meshgate/opa/`): OPA's Go `rego` package compiled as a C shared library. It is the
reference implementation the embedded regorus engine is checked against (tests run one decision
table on both), and a deployment may serve it with `policy.engine: opa`.
"""

# Bound with ctypes by hand: the wheel's own wrapper requires Python >= 3.14; the C ABI does not.

from __future__ import annotations

import ctypes
import json
import threading
from pathlib import Path
from typing import Any

from meshgate.errors import ConfigError, PolicyBundleInvalid, PolicyUnavailable
from policies.bundle import PolicyBundle, load_bundle


class _Library:
    """The five C functions we use; every call returns a malloc'd JSON envelope we must free."""

    def __init__(self, path: Path) -> None:
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise ConfigError(
                f"the OPA library is not loadable at {path} ({exc}); fetch it with: python scripts/fetch_opa.py"
            ) from exc
        lib.OpaNew.restype = ctypes.c_uint64
        lib.OpaNew.argtypes = []
        lib.OpaDestroy.restype = None
        lib.OpaDestroy.argtypes = [ctypes.c_uint64]
        lib.OpaFreeString.restype = None
        lib.OpaFreeString.argtypes = [ctypes.c_void_p]
        for name in ("OpaAddPolicy", "OpaAddData"):
            getattr(lib, name).restype = ctypes.c_void_p
            getattr(lib, name).argtypes = [ctypes.c_uint64, ctypes.c_char_p, ctypes.c_char_p]
        lib.OpaEvalDocument.restype = ctypes.c_void_p
        lib.OpaEvalDocument.argtypes = [ctypes.c_uint64, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
        self.lib = lib

    def call(self, name: str, *args: Any) -> dict[str, Any]:
        """Call `name`; returns the envelope, or raises `_OpaError` with OPA's code and message."""
        pointer = getattr(self.lib, name)(*args)
        if not pointer:
            raise _OpaError("internal", f"{name} returned NULL")
        try:
            envelope: dict[str, Any] = json.loads(ctypes.string_at(pointer))
        finally:
            self.lib.OpaFreeString(pointer)
        error = envelope.get("error")
        if error:
            raise _OpaError(str(error.get("code", "unknown")), str(error.get("message", "")))
        return envelope


class _OpaError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class OpaEngine:
    """Evaluates rule paths (`data.meshgate.mcp.decision`) on OPA's Go evaluator.

    Same contract as `RegorusEngine`: loads the bundle on construction and on `reload()`
    (`PolicyBundleInvalid` with OPA's file:line, the previous bundle serving on), `evaluate`
    returns the JSON value or None when undefined and raises `PolicyUnavailable` on failure.
    """

    name = "opa"

    def __init__(self, bundle_dir: Path, library: Path, *, include_tests: bool = False) -> None:
        """`include_tests` also loads `*_test.rego`, to run a bundle's Rego tests on OPA."""
        self._bundle_dir = Path(bundle_dir)
        self._include_tests = include_tests
        self._library = _Library(library)
        self._lock = threading.Lock()
        self._handle = 0
        self._bundle = self._load()

    @property
    def bundle_dir(self) -> Path:
        return self._bundle_dir

    @property
    def revision(self) -> str:
        return self._bundle.revision

    def reload(self, bundle: PolicyBundle | None = None) -> str:
        """Re-read the bundle (or serve `bundle`, already read and validated from this engine's
        directory by the bundle watcher) from the next decision on; returns the new revision.

        Raises:
            PolicyBundleInvalid: the new bundle does not load; the previous one keeps serving.
        """
        self._bundle = self._load(bundle)
        return self._bundle.revision

    def evaluate(self, query: str, input_doc: dict[str, Any]) -> Any:
        """The JSON value of the rule `query` (`data.a.b`) for `input_doc`, or None when undefined.

        Raises:
            PolicyUnavailable: the input is not JSON, or OPA failed to evaluate (a conflict, a
                builtin error).
        """
        try:
            input_json = json.dumps(input_doc).encode()
        except (TypeError, ValueError) as exc:
            raise PolicyUnavailable(f"the input document is not JSON: {exc}") from exc
        path = query.removeprefix("data").removeprefix(".").encode()
        with self._lock:  # the handle may be swapped by a reload; evaluation itself is short
            try:
                envelope = self._library.call("OpaEvalDocument", self._handle, path, input_json, 0, 0)
            except _OpaError as exc:
                raise PolicyUnavailable(f"policy evaluation failed: {_first_error(exc.message)}", query=query) from exc
        results: list[dict[str, Any]] = envelope.get("result") or []
        if not results or not results[0].get("expressions"):
            return None
        return results[0]["expressions"][0]["value"]

    def close(self) -> None:
        with self._lock:
            if self._handle:
                self._library.lib.OpaDestroy(self._handle)
                self._handle = 0

    def _load(self, bundle: PolicyBundle | None = None) -> PolicyBundle:
        bundle = bundle or load_bundle(self._bundle_dir, include_tests=self._include_tests)
        handle = build_handle(self._library, bundle)
        with self._lock:
            old, self._handle = self._handle, handle
        if old:
            self._library.lib.OpaDestroy(old)
        return bundle


def build_handle(library: _Library, bundle: PolicyBundle) -> int:
    """A new OPA engine holding every module and the data of `bundle`.

    Raises:
        PolicyBundleInvalid: a module does not compile; the message carries OPA's file:line.
    """
    handle = int(library.lib.OpaNew())
    try:
        for module in bundle.modules:
            library.call("OpaAddPolicy", handle, module.name.encode(), module.source.encode())
        library.call("OpaAddData", handle, b"", bundle.data_json.encode())
    except _OpaError as exc:
        library.lib.OpaDestroy(handle)
        raise PolicyBundleInvalid(_first_error(exc.message), bundle=str(bundle.directory)) from exc
    return handle


def _first_error(message: str) -> str:
    """`rego/x.rego:5: rego_parse_error: unexpected } token` from OPA's multi-line error text."""
    first = message.removeprefix("1 error occurred: ").splitlines()[0] if message else ""
    return first.strip() or message
