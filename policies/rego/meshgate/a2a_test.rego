package meshgate.a2a_test

import data.meshgate.a2a

grants := {"travel": {"finance": ["currency-quote"]}}

message(tenant, org, skill, chain) := {
	"version": 1,
	"subject": {"id": "planner-bot", "tenant": tenant, "roles": [], "issuer": "apikey"},
	"action": "a2a.message/send",
	"resource": {"kind": "agent", "id": "ledger", "agent": "ledger", "organization": org, "skill": skill},
	"message": {"parts": [{"text": "quote 100 EUR in USD"}]},
	"delegation": chain,
	"context": {"time": "2026-01-01T00:00:00.000Z", "trace_id": "", "request_size": 10, "client": "", "protocol_version": "1.0"},
}

hop(agent, scopes) := {"subject": "planner-bot", "agent": agent, "scopes": scopes}

test_same_org_delegation_is_allowed if {
	d := a2a.decision with input as message("finance", "finance", "transfer-funds", [hop("ledger", [])])
		with data.meshgate.a2a_grants as grants
	d.allow
	d.reasons == ["same organisation finance"]
}

test_granted_cross_org_skill_is_allowed if {
	d := a2a.decision with input as message("travel", "finance", "currency-quote", [hop("ledger", [])])
		with data.meshgate.a2a_grants as grants
	d.allow
}

test_ungranted_cross_org_skill_is_denied if {
	d := a2a.decision with input as message("travel", "finance", "transfer-funds", [hop("ledger", [])])
		with data.meshgate.a2a_grants as grants
	not d.allow
	d.reasons == ["organisation travel has no grant for skill transfer-funds of organisation finance"]
}

test_grants_are_one_way if {
	d := a2a.decision with input as message("finance", "travel", "currency-quote", [])
		with data.meshgate.a2a_grants as grants
	not d.allow
}

test_cross_org_without_a_skill_is_denied if {
	d := a2a.decision with input as message("travel", "finance", "", [])
		with data.meshgate.a2a_grants as grants
	not d.allow
}

test_unknown_target_organisation_is_denied if {
	d := a2a.decision with input as message("travel", "", "currency-quote", [])
		with data.meshgate.a2a_grants as grants
	not d.allow
}

test_two_hops_are_allowed if {
	chain := [hop("planner", ["quote", "pay"]), hop("ledger", ["quote"])]
	d := a2a.decision with input as message("travel", "finance", "currency-quote", chain)
		with data.meshgate.a2a_grants as grants
		with data.meshgate.a2a_max_delegation_depth as 2
	d.allow
}

test_three_hops_exceed_the_depth_limit if {
	chain := [hop("a", ["quote"]), hop("b", ["quote"]), hop("ledger", ["quote"])]
	d := a2a.decision with input as message("finance", "finance", "currency-quote", chain)
		with data.meshgate.a2a_grants as grants
		with data.meshgate.a2a_max_delegation_depth as 2
	not d.allow
	d.reasons == ["delegation chain of 3 hops exceeds the maximum of 2"]
}

test_widening_scopes_is_denied if {
	chain := [hop("planner", ["quote"]), hop("ledger", ["quote", "pay"])]
	d := a2a.decision with input as message("finance", "finance", "currency-quote", chain)
		with data.meshgate.a2a_grants as grants
	not d.allow
	d.reasons == ["hop 2 (agent ledger) widens the scopes of hop 1 with pay"]
}

test_task_get_follows_the_message_rule if {
	doc := json.patch(message("travel", "finance", "currency-quote", []), [
		{"op": "replace", "path": "/action", "value": "a2a.tasks/get"},
		{"op": "remove", "path": "/message"},
	])
	d := a2a.decision with input as doc with data.meshgate.a2a_grants as grants
	d.allow
}

test_unserved_action_is_denied if {
	doc := json.patch(message("finance", "finance", "x", []), [{"op": "replace", "path": "/action", "value": "a2a.agents/discover"}])
	d := a2a.decision with input as doc with data.meshgate.a2a_grants as grants
	not d.allow
}
