package meshgate.a2a_test

import data.meshgate.a2a

grants := {"travel": {"finance": ["currency-quote"]}}

message(tenant, org, skill, chain) := {
	"version": 1,
	"subject": {"id": "planner-bot", "tenant": tenant, "roles": [], "issuer": "apikey"},
	"action": "a2a.message/send",
	"resource": {"kind": "agent", "id": "ledger", "agent": "ledger", "organization": org, "skill": skill},
	"message": {"parts": [{"text": "quote 100 EUR in USD"}], "skill": skill},
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
	d.reasons == ["organisation travel has no grant for skill transfer-funds of agent ledger"]
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

# The broker decides a message to an unknown agent with organisation "": the denial must read exactly like
# the one for an agent that exists but is out of reach, with or without a named skill.
test_an_unknown_agent_is_denied_like_an_unreachable_one if {
	existing := a2a.decision with input as message("travel", "finance", "transfer-funds", [hop("ledger", [])])
		with data.meshgate.a2a_grants as grants
	unknown := a2a.decision with input as message("travel", "", "transfer-funds", [hop("ledger", [])])
		with data.meshgate.a2a_grants as grants
	not unknown.allow
	unknown.reasons == existing.reasons
	# No skill named: the broker infers a single-skill card's skill, which the denial must not show.
	inferred := object.union(message("travel", "finance", "transfer-funds", []), {"message": {"parts": [], "skill": ""}})
	unnamed := object.union(message("travel", "", "", []), {"message": {"parts": [], "skill": ""}})
	a := a2a.decision with input as inferred with data.meshgate.a2a_grants as grants
	b := a2a.decision with input as unnamed with data.meshgate.a2a_grants as grants
	a.reasons == ["organisation travel has no grant to reach agent ledger"]
	b.reasons == a.reasons
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
	doc := json.patch(message("finance", "finance", "x", []), [{"op": "replace", "path": "/action", "value": "a2a.tasks/list"}])
	d := a2a.decision with input as doc with data.meshgate.a2a_grants as grants
	not d.allow
}

# Message obligations: across organisations only, on message actions only.

redactions := {"travel": ["traveller.passport_number"]}

test_cross_org_message_carries_the_message_obligations if {
	d := a2a.decision with input as message("travel", "finance", "currency-quote", [hop("ledger", [])])
		with data.meshgate.a2a_grants as grants
		with data.meshgate.a2a_redacted_parts as redactions
	d.allow
	d.obligations == {"deny_file_parts": true, "max_message_bytes": 65536, "redact_parts": ["traveller.passport_number"]}
}

test_cross_org_message_size_cap_comes_from_data if {
	d := a2a.decision with input as message("travel", "finance", "currency-quote", [])
		with data.meshgate.a2a_grants as grants
		with data.meshgate.a2a_redacted_parts as {}
		with data.meshgate.a2a_cross_org_max_message_bytes as 1024
	d.obligations == {"deny_file_parts": true, "max_message_bytes": 1024}
}

test_same_org_message_has_no_obligations if {
	d := a2a.decision with input as message("travel", "travel", "plan-trip", [])
		with data.meshgate.a2a_grants as grants
		with data.meshgate.a2a_redacted_parts as redactions
	d.allow
	d.obligations == {}
}

test_task_actions_carry_no_message_obligations if {
	task_get := object.union(message("travel", "finance", "currency-quote", []), {"action": "a2a.tasks/get"})
	d := a2a.decision with input as task_get with data.meshgate.a2a_grants as grants
	d.obligations == {}
}

test_stream_carries_the_message_obligations if {
	stream := object.union(message("travel", "finance", "currency-quote", []), {"action": "a2a.message/stream"})
	d := a2a.decision with input as stream with data.meshgate.a2a_grants as grants
	d.obligations.deny_file_parts
}

discover(tenant) := {
	"version": 1,
	"subject": {"id": "bot", "tenant": tenant, "roles": [], "issuer": "apikey"},
	"action": "a2a.agents/discover",
	"resource": {
		"kind": "catalog", "id": "agents", "items": ["concierge", "ledger", "vault"],
		"agents": {
			"concierge": {"organization": "travel", "skills": ["plan-trip"]},
			"ledger": {"organization": "finance", "skills": ["currency-quote", "transfer-funds"]},
			"vault": {"organization": "finance", "skills": ["transfer-funds"]},
		},
	},
	"delegation": [],
	"context": {"time": "2026-01-01T00:00:00.000Z", "trace_id": "", "request_size": 0, "client": "", "protocol_version": "1.0"},
}

test_discovery_shows_own_org_and_agents_with_a_granted_skill if {
	d := a2a.decision with input as discover("travel") with data.meshgate.a2a_grants as grants
	d.allow
	d.obligations.visible == ["concierge", "ledger"]
	d.reasons == ["organisation travel may reach 2 of 3 agents"]
}

test_discovery_without_grants_shows_only_own_org if {
	d := a2a.decision with input as discover("finance") with data.meshgate.a2a_grants as grants
	d.allow
	d.obligations.visible == ["ledger", "vault"]
}

test_discovery_by_an_unknown_tenant_shows_nothing if {
	d := a2a.decision with input as discover("") with data.meshgate.a2a_grants as grants
	d.obligations.visible == []
}

test_discovery_never_carries_message_obligations if {
	d := a2a.decision with input as discover("travel") with data.meshgate.a2a_grants as grants
	object.keys(d.obligations) == {"visible"}
}

push_config(tenant, org, skill) := object.union(message(tenant, org, skill, []), {
	"action": "a2a.tasks/pushNotificationConfig/create",
	"resource": {"kind": "task", "id": "t1", "agent": "ledger", "organization": org, "skill": skill},
})

test_push_config_of_a_granted_skill_is_allowed if {
	d := a2a.decision with input as push_config("travel", "finance", "currency-quote")
		with data.meshgate.a2a_grants as grants
	d.allow
	d.obligations == {}
}

test_push_config_of_an_ungranted_skill_is_denied if {
	d := a2a.decision with input as push_config("travel", "finance", "transfer-funds")
		with data.meshgate.a2a_grants as grants
	not d.allow
}

admin(roles) := {
	"version": 1,
	"subject": {"id": "ops", "tenant": "meshgate", "roles": roles, "issuer": "apikey"},
	"action": "a2a.admin",
	"resource": {"kind": "agent", "id": "ledger", "operation": "add"},
	"delegation": [],
	"context": {"time": "2026-01-01T00:00:00.000Z", "trace_id": "", "request_size": 0, "client": "", "protocol_version": "1.0"},
}

test_admin_role_may_administer_agents if {
	d := a2a.decision with input as admin(["admin"])
	d.allow
	d.reasons == ["ops holds role admin"]
}

test_other_roles_may_not_administer_agents if {
	d := a2a.decision with input as admin(["reader"])
	not d.allow
	d.reasons == ["ops may not administer the broker's agents: role admin required"]
}

# --- models -------------------------------------------------------------------------------------

model_message(tenant) := {
	"version": 1,
	"subject": {"id": "planner-bot", "tenant": tenant, "roles": [], "issuer": "apikey"},
	"action": "a2a.message/send",
	"resource": {"kind": "agent", "id": "smollm2", "agent": "smollm2", "organization": "meshgate", "skill": "generate"},
	"message": {"parts": [{"text": "write a haiku"}]},
	"delegation": [hop("smollm2", [])],
	"context": {"time": "2026-01-01T00:00:00.000Z", "trace_id": "", "request_size": 10, "client": "", "protocol_version": "1.0"},
}

model_access := {"smollm2": {"travel": {"max_tokens": 256}}}

test_organisation_granted_a_model_may_message_it_under_a_token_budget if {
	d := a2a.decision with input as model_message("travel") with data.meshgate.model_access as model_access
	d.allow
	d.reasons == ["organisation travel may use model smollm2"]
	d.obligations.max_tokens == 256
	d.obligations.deny_file_parts
}

test_organisation_without_a_model_grant_may_not_message_it if {
	d := a2a.decision with input as model_message("finance") with data.meshgate.model_access as model_access
	not d.allow
	d.reasons == ["organisation finance has no grant to reach agent smollm2"]
}

test_discovery_shows_the_models_an_organisation_may_use if {
	discover := {
		"version": 1,
		"subject": {"id": "planner-bot", "tenant": "travel", "roles": [], "issuer": "apikey"},
		"action": "a2a.agents/discover",
		"resource": {"kind": "directory", "id": "agents", "agents": {
			"smollm2": {"organization": "meshgate", "skills": ["generate"]},
			"ledger": {"organization": "finance", "skills": ["transfer-funds"]},
		}},
	}
	d := a2a.decision with input as discover with data.meshgate.model_access as model_access
		with data.meshgate.a2a_grants as {}
	d.obligations.visible == ["smollm2"]
	hidden := a2a.decision with input as discover with data.meshgate.model_access as {}
		with data.meshgate.a2a_grants as {}
	hidden.obligations.visible == []
}
