"""Which rules of a bundle a decision used, and which rules its Rego unit tests reach.

Behind `meshgate policy eval|explain` (`fired_rules`) and `meshgate policy test` (`rule_coverage`).
Both read regorus's AST for the rule definitions of the bundle's non-test modules, named by their
bundle-relative file and first line, so that what is printed points at the source an author edits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

from policies.bundle import TEST_SUFFIX, PolicyBundle, RegoModule
from policies.regorus_engine import RegorusApi, build_engine

_MARK = "meshgate-fired"
_MARK_LINE = re.compile(rf"{_MARK} (\d+) (\d+)$")
_VALUE = "__meshgate_value"


class _TracingApi(RegorusApi, Protocol):
    """The coverage and print facilities of `regorus.Engine` (0.13) used here."""

    def set_enable_coverage(self, enable: bool) -> None: ...
    def get_coverage_report_as_json(self) -> str: ...
    def clear_coverage_data(self) -> None: ...
    def set_gather_prints(self, enable: bool) -> None: ...
    def take_prints(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class RuleDefinition:
    """One definition of a rule (a rule with several definitions, such as `grant`, has one per `if`)."""

    path: str
    """`data.meshgate.mcp.grant`; a function's definitions carry its name."""
    file: str
    """Bundle-relative, as in `rego/meshgate/mcp.rego`."""
    line: int
    end_line: int
    default: bool = False

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class RuleCoverage:
    rule: RuleDefinition
    evaluated: bool
    """Whether any line of the definition was evaluated by a test."""


def rule_definitions(bundle: PolicyBundle) -> list[RuleDefinition]:
    """Every rule definition of the bundle's non-test modules, in file and source order.

    Raises:
        PolicyBundleInvalid: a module does not parse.
    """
    return [d for d, _ in _definitions(bundle, _served(bundle.modules))]


def rule_coverage(bundle: PolicyBundle, test_names: Iterable[str]) -> list[RuleCoverage]:
    """Evaluate the named tests of `bundle` (read with tests) with coverage on; which definitions they reached.

    A test that raises still counts for what it evaluated before failing.

    Raises:
        PolicyBundleInvalid: a module does not parse.
    """
    engine = cast(_TracingApi, build_engine(bundle))
    engine.set_enable_coverage(True)
    for name in test_names:
        try:
            engine.eval_rule(name)
        except Exception:  # a failing test is reported by the test runner; here only its reach counts
            pass
    covered = _covered_lines(engine)
    return [
        RuleCoverage(d, any(line in covered.get(d.file, set()) for line in range(d.line, d.end_line + 1)))
        for d in rule_definitions(bundle)
    ]


def fired_rules(bundle: PolicyBundle, query: str, input_doc: dict[str, Any]) -> list[RuleDefinition]:
    """The rule definitions whose conditions held (and whose value was defined) while evaluating `query`.

    Found by evaluating a copy of the bundle in which each definition's body ends with a `print` of
    its number: regorus's coverage report alone says which lines were *evaluated*, and a rule whose
    last condition was false is evaluated all the same. A `default` counts as fired when it was
    evaluated and no other definition of its rule fired. The copy decides exactly as the bundle does
    (`print` is always true); the decision itself is still the decision point's.

    Raises:
        PolicyBundleInvalid: a module does not parse.
        Exception: whatever regorus raises when the query fails to evaluate.
    """
    served = _served(bundle.modules)
    definitions = _definitions(bundle, served)
    by_file: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for number, (definition, rule) in enumerate(definitions):
        by_file.setdefault(definition.file, []).append((number, rule))
    instrumented = tuple(replace(m, source=_instrument(m.source, by_file.get(m.name, []))) for m in served)
    engine = cast(_TracingApi, build_engine(replace(bundle, modules=instrumented)))
    engine.set_gather_prints(True)
    engine.set_enable_coverage(True)
    engine.set_input_json(json.dumps(input_doc))
    engine.eval_rule(query)
    fired: set[tuple[int, int]] = set()
    for line in engine.take_prints():
        match = _MARK_LINE.search(line)
        if match:
            fired.add((int(match.group(1)), int(match.group(2))))
    covered = _covered_lines(engine)
    fired_paths = {definitions[n][0].path for n, _ in fired}
    for number, (definition, _) in enumerate(definitions):
        if definition.default and definition.path not in fired_paths:
            if definition.line in covered.get(definition.file, set()):
                fired.add((number, 0))
    return [_branch(*definitions[n], index) for n, index in sorted(fired)]


def _branch(definition: RuleDefinition, rule: dict[str, Any], index: int) -> RuleDefinition:
    """The definition, starting at its `else` branch `index` when that is the one that fired."""
    if index == 0:
        return definition
    return replace(definition, line=rule["Spec"]["bodies"][index]["span"]["line"])


def _served(modules: Sequence[RegoModule]) -> list[RegoModule]:
    return [m for m in modules if not m.name.endswith(TEST_SUFFIX)]


def _definitions(bundle: PolicyBundle, modules: Sequence[RegoModule]) -> list[tuple[RuleDefinition, dict[str, Any]]]:
    names = {m.name for m in modules}
    sources = {m.name: m.source.encode() for m in modules}
    engine = build_engine(replace(bundle, modules=tuple(modules)))
    found: list[tuple[RuleDefinition, dict[str, Any]]] = []
    for module in json.loads(engine.get_ast_as_json()):
        file = module["source"]["file"]
        if file not in names:
            continue
        package = ["data", *_ref_path(module["ast"]["package"]["refr"])]
        for rule in module["ast"]["rules"]:
            kind, body = next(iter(rule.items()))
            head = body if kind == "Default" else next(iter(body["head"].values()))
            span = body["span"]
            end_line = span["line"] + sources[file][span["start"] : span["end"]].count(b"\n")
            path = ".".join([*package, *_ref_path(head["refr"])])
            found.append((RuleDefinition(path, file, span["line"], end_line, kind == "Default"), rule))
    return found


def _instrument(source: str, rules: Sequence[tuple[int, dict[str, Any]]]) -> str:
    """`source` with a marker `print` at the end of every body; line numbers are kept for bodies.

    A definition without a body (`tenant := data.tenants[input.subject.tenant]`) gets one that
    computes its value first, so that an undefined value prints nothing.
    """
    edits: list[tuple[int, int, bytes]] = []  # (start, end, replacement) over the UTF-8 source
    text = source.encode()
    for number, rule in rules:
        spec = rule.get("Spec")
        if spec is None:
            continue  # a default: judged by coverage
        if not spec["bodies"]:
            mark = f'print("{_MARK}", {number}, 0)'.encode()
            assign = next(iter(spec["head"].values())).get("assign")
            if assign is None:
                continue  # a body-less rule with no value to compute (`s contains "a"`): nothing to mark
            # The assignment's own span: regorus's span of an object value can start past its brace.
            start, end = assign["span"]["start"], _past_quote(text, assign["span"]["end"])
            op, value = (b":=", b"") if assign["op"] == "ColEq" else (b"=", b"")
            value = text[start:end].strip().removeprefix(op)
            edits.append((start, end, op + b" " + _VALUE.encode()))
            edits.append((end, end, b" if { " + _VALUE.encode() + b" := " + value + b"; " + mark + b" }"))
            continue
        for index, body in enumerate(spec["bodies"]):
            mark = f'print("{_MARK}", {number}, {index})'.encode()
            query = body["query"]
            stmts: list[Any] = query.get("stmts") or []
            start, end = query["span"]["start"], query["span"]["end"]
            if not stmts:  # a bare `else := value`
                at = body["span"]["end"]
                edits.append((at, at, b" if { " + mark + b" }"))
            elif text[start:end].startswith(b"{"):
                close = text.index(b"}", end - 1)
                line_start = text.rfind(b"\n", start, close) + 1
                # On the closing brace's line: the line count of the body stays as it was.
                separator = b" " if line_start and not text[line_start:close].strip() else b"; "
                edits.append((close, close, separator + mark + b" "))
            else:  # `if <expr>` without braces; the query's span may start inside a string, so after the `if`
                at = text.rfind(b"if", body["span"]["start"], start + 1) + 2
                edits.append((at, at, b" {"))
                end = _past_quote(text, end)
                edits.append((end, end, b"; " + mark + b" }"))
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        text = text[:start] + replacement + text[end:]
    return text.decode()


def _past_quote(text: bytes, end: int) -> int:
    """regorus's span of a string literal stops before its closing quote; step over it."""
    return end + 1 if text[end : end + 1] in (b'"', b"`") else end


def _covered_lines(engine: _TracingApi) -> dict[str, set[int]]:
    report = json.loads(engine.get_coverage_report_as_json())
    return {f["path"]: set(f["covered"]) for f in report["files"]}


def _ref_path(ref: dict[str, Any]) -> list[str]:
    """`a.b["c"]` as `["a", "b", "c"]`; a computed key is kept as `[...]`."""
    if "Var" in ref:
        return [ref["Var"]["value"]]
    if "RefDot" in ref:
        return [*_ref_path(ref["RefDot"]["refr"]), ref["RefDot"]["field"][1]]
    if "RefBrack" in ref:
        index = ref["RefBrack"]["index"]
        key = json.dumps(index["String"]["value"]) if "String" in index else "..."
        head = _ref_path(ref["RefBrack"]["refr"])
        return [*head[:-1], f"{head[-1]}[{key}]"]
    return ["..."]
