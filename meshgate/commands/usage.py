"""`meshgate usage`: token totals from the metering log, grouped by tenant, subject, model and node."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass

from meshgate.commands import SubParsers, format_table
from meshgate.config import Config
from registry.clock import parse_since
from registry.models import UsageQuery, UsageRecord
from registry.store import RegistryStore

GROUPS = ("tenant", "subject", "model", "node", "via")
DEFAULT_GROUPING = ("tenant", "subject", "model", "node")
# Totals are summed here from the records; past this many the output says it is partial.
MAX_RECORDS = 1_000_000


@dataclass(frozen=True, slots=True)
class UsageTotal:
    group: tuple[str, ...]
    calls: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def add_parser(subparsers: SubParsers) -> None:
    """Register `usage` and its flags; `args.handler` becomes `run`."""
    parser = subparsers.add_parser("usage", help="token usage of inference calls, totalled per group")
    parser.add_argument("--since", type=_since, help="ISO-8601 time, or relative: 30s, 15m, 2h, 7d")
    parser.add_argument("--tenant", help="only this tenant")
    parser.add_argument("--subject", help="only this subject")
    parser.add_argument("--model", help="only this model")
    parser.add_argument(
        "--by",
        type=_grouping,
        default=DEFAULT_GROUPING,
        help=f"comma-separated grouping from {', '.join(GROUPS)} (default: {','.join(DEFAULT_GROUPING)})",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per group per line")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: RegistryStore, config: Config | None = None) -> int:
    """The CLI handler; `config` is unused, accepted because every handler is called with it."""
    print(
        usage_totals(
            store,
            since=args.since,
            tenant=args.tenant,
            subject=args.subject,
            model=args.model,
            by=args.by,
            as_json=args.json,
        )
    )
    return 0


def usage_totals(
    store: RegistryStore,
    since: str | None = None,
    tenant: str | None = None,
    subject: str | None = None,
    model: str | None = None,
    by: Sequence[str] = DEFAULT_GROUPING,
    as_json: bool = False,
) -> str:
    """Totals of the matching usage records per group, largest total first: a table, or JSON lines.

    Raises:
        ValueError: `since` is not a time or a span, or `by` names an unknown grouping.
    """
    unknown = [g for g in by if g not in GROUPS]
    if unknown or not by:
        raise ValueError(f"cannot group by {', '.join(unknown) or 'nothing'}; choose from {', '.join(GROUPS)}")
    query = UsageQuery(
        since=None if since is None else parse_since(since),
        tenant=tenant,
        subject=subject,
        model=model,
        limit=MAX_RECORDS,
    )
    records = store.query_usage(query)
    totals = summarise(records, by)
    if as_json:
        return "\n".join(
            json.dumps(
                {
                    **dict(zip(by, t.group, strict=True)),
                    "calls": t.calls,
                    "prompt_tokens": t.prompt_tokens,
                    "completion_tokens": t.completion_tokens,
                },
                ensure_ascii=False,
            )
            for t in totals
        )
    if not totals:
        return "no usage records match"
    headers = (*(g.upper() for g in by), "CALLS", "PROMPT", "COMPLETION", "TOTAL")
    rows = [(*t.group, *(str(n) for n in (t.calls, t.prompt_tokens, t.completion_tokens, t.total))) for t in totals]
    table = format_table(headers, rows)
    if len(records) >= MAX_RECORDS:
        table += f"\n(partial: only the newest {MAX_RECORDS} records were summed; narrow with --since)"
    return table


def summarise(records: Sequence[UsageRecord], by: Sequence[str]) -> list[UsageTotal]:
    """One total per distinct value of the `by` fields, largest token total first, then by group."""
    sums: dict[tuple[str, ...], list[int]] = {}
    for record in records:
        key = tuple(str(getattr(record, field)) for field in by)
        entry = sums.setdefault(key, [0, 0, 0])
        entry[0] += 1
        entry[1] += record.prompt_tokens
        entry[2] += record.completion_tokens
    totals = [UsageTotal(key, calls, prompt, completion) for key, (calls, prompt, completion) in sums.items()]
    return sorted(totals, key=lambda t: (-t.total, t.group))


def _since(value: str) -> str:
    try:
        return parse_since(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time or a span like 2h: {value!r}") from None


def _grouping(value: str) -> tuple[str, ...]:
    fields = tuple(f.strip() for f in value.split(",") if f.strip())
    unknown = [f for f in fields if f not in GROUPS]
    if unknown or not fields:
        raise argparse.ArgumentTypeError(f"group by some of {', '.join(GROUPS)}, comma-separated: {value!r}")
    return fields
