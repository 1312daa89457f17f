# Why regorus: real Rego, OPA-identical decisions in our tests, in-process, fastest on PyPI; no OPA binary here.
"""The embedded Rego engine: a bundle evaluated in-process by regorus, one engine per thread.

regorus engines are bound to the thread that built them (even `clone()` panics elsewhere), so
each thread builds its own from the shared, immutable bundle source and rebuilds after a reload.
"""

from __future__ import annotations

import json
import threading
import weakref
from pathlib import Path
from typing import Any, Protocol, cast

import regorus  # pyright: ignore[reportMissingTypeStubs]

from meshgate.errors import PolicyBundleInvalid, PolicyUnavailable
from policies.bundle import PolicyBundle, load_bundle

# What `eval_rule_as_json` returns for an undefined rule in regorus 0.13.
_UNDEFINED = '"<undefined>"'

# Each thread's engines, per RegorusEngine, live in the thread's own slot and not in the RegorusEngine: that may
# be collected on any thread (the cyclic GC runs wherever it is triggered), and an engine dropped on a thread other
# than its own raises. A dead owner's engine is dropped by its thread at that thread's next build.
_THREAD_SLOTS = threading.local()


def _slots() -> dict[int, tuple[weakref.ref[RegorusEngine], PolicyBundle, RegorusApi]]:
    slots: dict[int, tuple[weakref.ref[RegorusEngine], PolicyBundle, RegorusApi]] | None
    slots = getattr(_THREAD_SLOTS, "engines", None)
    if slots is None:
        slots = _THREAD_SLOTS.engines = {}
    return slots


class RegorusApi(Protocol):
    """The part of `regorus.Engine` we use, typed here because the compiled module ships no stubs."""

    def set_rego_v0(self, enable: bool) -> None: ...
    def add_policy(self, path: str, rego: str) -> str: ...
    def add_data_json(self, data: str) -> None: ...
    def set_input_json(self, input: str) -> None: ...
    def eval_rule(self, rule: str) -> object: ...
    def eval_rule_as_json(self, rule: str) -> str: ...
    def get_ast_as_json(self) -> str: ...


class RegorusEngine:
    """Evaluates rule paths (such as `data.meshgate.mcp.decision`) against a bundle directory.

    Rego v1 syntax, as in OPA 1.x. The bundle is read and parsed on construction and on
    `reload()`; `evaluate` may be called from any thread.
    """

    name = "regorus"

    def __init__(self, bundle_dir: Path) -> None:
        """Load the bundle at `bundle_dir`.

        Raises:
            PolicyBundleInvalid: the bundle does not load; the message carries file:line:col.
        """
        self._bundle_dir = Path(bundle_dir)
        self._bundle = self._load()

    @property
    def bundle_dir(self) -> Path:
        return self._bundle_dir

    @property
    def revision(self) -> str:
        return self._bundle.revision

    def reload(self, bundle: PolicyBundle | None = None) -> str:
        """Re-read the bundle and serve it from the next decision on; returns the new revision.

        `bundle`, already read from this engine's directory, is served as is instead of re-reading
        it, so that what a caller validated is exactly what serves (the bundle watcher).

        Raises:
            PolicyBundleInvalid: the new bundle does not load; the previous one keeps serving.
        """
        bundle = bundle or load_bundle(self._bundle_dir)
        # Built only to validate, and dropped on this thread: regorus engines are unsendable, so one left in
        # this thread's slot (the hot-reload worker's) would fail when the engine is collected elsewhere.
        build_engine(bundle)
        self._bundle = bundle
        return bundle.revision

    def evaluate(self, query: str, input_doc: dict[str, Any]) -> Any:
        """The JSON value of the rule `query` for `input_doc`, or None when it is undefined.

        Raises:
            PolicyUnavailable: the input is not JSON, the query names no rule, or evaluation
                failed (a Rego runtime error such as an unknown builtin or a conflict).
        """
        try:
            input_json = json.dumps(input_doc)
        except (TypeError, ValueError) as exc:
            raise PolicyUnavailable(f"the input document is not JSON: {exc}") from exc
        engine = self._thread_engine()
        try:
            engine.set_input_json(input_json)
            # Interpreter, not the 2.5x faster Program/Rvm: its VM lets `x := <undefined>` pass, lacks `with`.
            value = engine.eval_rule_as_json(query)
        except Exception as exc:
            raise PolicyUnavailable(f"policy evaluation failed: {one_line(exc)}", query=query) from exc
        except BaseException as exc:
            # A Rust panic arrives as pyo3's PanicException, a BaseException: fail closed on it too,
            # and let this thread build a fresh engine rather than reuse one that unwound mid-call.
            if type(exc).__name__ != "PanicException":
                raise
            _slots().pop(id(self), None)
            raise PolicyUnavailable(f"policy engine panicked: {one_line(exc)}", query=query) from exc
        return None if value == _UNDEFINED else json.loads(value)

    def _load(self) -> PolicyBundle:
        bundle = load_bundle(self._bundle_dir)
        # Building here both validates the bundle and readies this thread.
        self._keep(bundle, build_engine(bundle))
        return bundle

    def _thread_engine(self) -> RegorusApi:
        bundle = self._bundle
        slot = _slots().get(id(self))
        if slot is not None and slot[0]() is self and slot[1] is bundle:
            return slot[2]
        try:
            engine = build_engine(bundle)
        except PolicyBundleInvalid as exc:
            raise PolicyUnavailable(exc.detail) from exc
        self._keep(bundle, engine)
        return engine

    def _keep(self, bundle: PolicyBundle, engine: RegorusApi) -> None:
        slots = _slots()
        for key in [key for key, (owner, _, _) in slots.items() if owner() is None]:
            del slots[key]
        slots[id(self)] = (weakref.ref(self), bundle, engine)


def build_engine(bundle: PolicyBundle) -> RegorusApi:
    """A fresh engine on the calling thread holding every module and the data of `bundle`.

    Modules are named bundle-relative (`rego/meshgate/mcp.rego`) so that error messages, which
    may reach a client as reasons, never carry the server's directory layout.

    Raises:
        PolicyBundleInvalid: a module does not parse; the message names the file, line and column.
    """
    engine = cast(RegorusApi, regorus.Engine())  # pyright: ignore[reportUnknownMemberType, reportAttributeAccessIssue]
    # Explicit so that a change of regorus's default cannot switch the language under us.
    engine.set_rego_v0(False)
    for module in bundle.modules:
        try:
            engine.add_policy(module.name, module.source)
        except Exception as exc:
            raise PolicyBundleInvalid(engine_message(exc), bundle=str(bundle.directory), file=module.name) from exc
    try:
        engine.add_data_json(bundle.data_json)
    except Exception as exc:
        raise PolicyBundleInvalid(f"data: {engine_message(exc)}", bundle=str(bundle.directory)) from exc
    return engine


def engine_message(exc: BaseException) -> str:
    """regorus's text for `exc`, without the Rust backtrace it appends when RUST_BACKTRACE is set."""
    return str(exc).split("\n\nStack backtrace:", 1)[0].strip("\n")


def one_line(exc: BaseException) -> str:
    """`file:line:col: error` from regorus's multi-line source excerpt, or its first line."""
    lines = [line.strip() for line in engine_message(exc).splitlines() if line.strip()]
    where = next((line[4:] for line in lines if line.startswith("--> ")), "")
    error = next((line[7:] for line in lines if line.startswith("error: ")), lines[0] if lines else type(exc).__name__)
    return f"{where}: {error}" if where else error
