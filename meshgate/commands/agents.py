"""`meshgate agents add|list|remove`: register A2A agents with the broker by card URL or card document.

Cards are stored verbatim (a signed card stays verifiable); `--jwks` names the keys trusted for the
agent's organisation, and then the card must carry a signature that verifies against them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from meshgate.commands import SubParsers, format_table
from meshgate.config import Config
from meshgate.errors import CardInvalid, ConfigError
from registry.clock import utc_now
from registry.models import AgentRecord
from registry.store import RegistryStore


def add_parser(subparsers: SubParsers) -> None:
    agents = subparsers.add_parser("agents", help="manage the A2A agents registered with the broker")
    sub = agents.add_subparsers(dest="agents_command", required=True)

    add = sub.add_parser(
        "add",
        help="register an agent by its card URL or a card file; the card is stored verbatim",
        description="Register an A2A agent, e.g.: meshgate agents add ledger --url "
        "http://127.0.0.1:9100/.well-known/agent-card.json --jwks finance.jwks.json",
    )
    add.add_argument("agent_id", help="agent id: a lowercase letter, then up to 30 lowercase letters, digits, '-'")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", default="", help="the card's URL (or the agent's base URL: the well-known path)")
    source.add_argument("--card", default="", help="a card document (JSON file)")
    add.add_argument("--org", default="", help="the agent's organisation (default: the card's provider.organization)")
    add.add_argument(
        "--jwks", default="", help="JWKS file of keys trusted for the organisation: requires a valid signature"
    )
    add.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the card (default 10)")
    add.add_argument("--replace", action="store_true", help="overwrite an agent registered under that id")
    add.set_defaults(handler=run_add)

    ls = sub.add_parser("list", help="list registered agents")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(handler=run_list)

    rm = sub.add_parser("remove", help="remove a registered agent")
    rm.add_argument("agent_id")
    rm.set_defaults(handler=run_remove)


def agents_add(
    store: RegistryStore,
    agent_id: str,
    *,
    url: str = "",
    card_file: str = "",
    org: str = "",
    jwks_file: str = "",
    replace: bool = False,
    timeout_s: float = 10.0,
) -> str:
    """Fetch or read the card, check it (and its signatures), store it; returns the summary line.

    Raises:
        ConfigError, CardInvalid, CardSignatureInvalid, AlreadyExists: nothing is stored then.
    """
    from a2a_broker.cards import card_url, fetch_card, load_jwks, parse_card, register_card

    if bool(url) == bool(card_file):
        raise ConfigError("give exactly one of --url or --card")
    if url:
        url = card_url(url)
        text = fetch_card(url, timeout_s=timeout_s)
    else:
        try:
            text = Path(card_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CardInvalid(f"cannot read the card file {card_file}: {exc}") from exc
    jwks = load_jwks(jwks_file) if jwks_file else None
    record = register_card(
        store, agent_id, text, card_url=url, organization=org, jwks=jwks, replace=replace, registered_at=utc_now()
    )
    card = parse_card(text)
    signed = "signed, verified" if record.signed else "unsigned"
    return f"registered {record.agent_id} ({record.organization}, {signed}): {card.name} with {len(card.skills)} skills"


def agent_summary(a: AgentRecord) -> dict[str, object]:
    """One registered agent as `agents list --json` and the broker's admin API show it."""
    from a2a_broker.cards import card_skill_ids, parse_card

    card = parse_card(a.card_json)
    return {
        "agent_id": a.agent_id,
        "organization": a.organization,
        "name": card.name,
        "skills": card_skill_ids(card),
        "signed": a.signed,
        "url": a.card_url,
        "registered_at": a.registered_at,
    }


def agents_list(store: RegistryStore, *, as_json: bool = False) -> str:
    from a2a_broker.cards import card_skill_ids, parse_card

    agents = store.list_agents()
    if as_json:
        return json.dumps([agent_summary(a) for a in agents], indent=2)
    if not agents:
        return "no agents registered"
    rows: list[list[str]] = []
    for a in agents:
        card = parse_card(a.card_json)
        skills = ",".join(card_skill_ids(card))
        rows.append([a.agent_id, a.organization, card.name, skills, "yes" if a.signed else "no", a.card_url or "-"])
    return format_table(["ID", "ORG", "NAME", "SKILLS", "SIGNED", "URL"], rows)


def run_add(args: argparse.Namespace, store: RegistryStore, config: Config) -> int:
    print(
        agents_add(
            store,
            args.agent_id,
            url=args.url,
            card_file=args.card,
            org=args.org,
            jwks_file=args.jwks,
            replace=args.replace,
            timeout_s=args.timeout,
        )
    )
    return 0


def run_list(args: argparse.Namespace, store: RegistryStore, config: Config) -> int:
    print(agents_list(store, as_json=args.json))
    return 0


def run_remove(args: argparse.Namespace, store: RegistryStore, config: Config) -> int:
    store.remove_agent(args.agent_id)
    print(f"removed {args.agent_id}")
    return 0
