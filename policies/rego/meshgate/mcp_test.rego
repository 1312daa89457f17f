# Unit tests of meshgate.mcp against the shipped data (policies/data/tenants.json).
# Every allow has a deny beside it. Run: python -c "from policies import *; print(run_rego_tests(DEFAULT_BUNDLE))"
package meshgate.mcp_test

import data.meshgate.mcp

# --- input builders ---------------------------------------------------------------------------

subject(tenant, roles) := {"id": "tester", "tenant": tenant, "roles": roles, "issuer": "apikey"}

call(tenant, roles, tool, arguments) := {
	"version": 1,
	"subject": subject(tenant, roles),
	"action": "mcp.tools/call",
	"resource": {"kind": "tool", "id": tool},
	"arguments": arguments,
}

get_prompt(tenant, prompt) := {
	"version": 1,
	"subject": subject(tenant, []),
	"action": "mcp.prompts/get",
	"resource": {"kind": "prompt", "id": prompt},
	"arguments": {},
}

read(tenant, roles, server, uri) := {
	"version": 1,
	"subject": subject(tenant, roles),
	"action": "mcp.resources/read",
	"resource": {"kind": "resource", "id": concat("+", [server, uri]), "server": server},
	"arguments": {},
}

listing(tenant, roles, action, catalog, items) := {
	"version": 1,
	"subject": subject(tenant, roles),
	"action": action,
	"resource": {"kind": "catalog", "id": catalog, "items": items},
	"arguments": {},
}

tools := ["toolbox_calculate", "notes_search_notes", "weather_forecast", "toolbox_hash_text"]

# --- tools/call ---------------------------------------------------------------------------------

test_tenant_may_call_a_tool_its_patterns_match if {
	d := mcp.decision with input as call("acme", [], "notes_search_notes", {"query": "x", "limit": 10})
	d.allow
	d.reasons == ["tenant acme may call notes_*"]
}

test_tenant_may_not_call_a_tool_outside_its_patterns if {
	d := mcp.decision with input as call("globex", [], "notes_search_notes", {})
	not d.allow
	d.reasons == ["tool notes_search_notes is not allowed for tenant globex"]
}

test_public_tenant_may_call_only_its_listed_tools if {
	mcp.decision.allow with input as call("public", [], "toolbox_calculate", {})
	not mcp.decision.allow with input as call("public", [], "toolbox_hash_text", {})
}

test_patterns_do_not_treat_underscore_or_dot_as_a_delimiter if {
	mcp.decision.allow with input as call("globex", [], "toolbox_v2.hash_text", {})
}

test_admin_may_call_a_tool_outside_the_tenant_patterns if {
	d := mcp.decision with input as call("globex", ["admin"], "notes_search_notes", {})
	d.allow
	d.reasons == ["role admin may call any tool"]
}

test_admin_of_an_unknown_tenant_may_call if {
	mcp.decision.allow with input as call("initech", ["admin"], "notes_search_notes", {})
}

test_argument_over_its_maximum_is_denied if {
	d := mcp.decision with input as call("acme", [], "notes_search_notes", {"limit": 500})
	not d.allow
	d.reasons == ["argument limit=500 exceeds the maximum 50 for notes_search_notes"]
}

test_argument_at_its_maximum_is_allowed if {
	mcp.decision.allow with input as call("acme", [], "notes_search_notes", {"limit": 50})
}

test_argument_limit_holds_for_admin if {
	not mcp.decision.allow with input as call("acme", ["admin"], "notes_search_notes", {"limit": 51})
}

test_limited_argument_that_is_not_a_number_is_denied if {
	d := mcp.decision with input as call("acme", [], "notes_search_notes", {"limit": "500"})
	not d.allow
	d.reasons == ["argument limit of notes_search_notes must be a number"]
}

test_tool_requiring_a_role_is_denied_without_it if {
	d := mcp.decision with input as call("acme", ["viewer"], "notes_delete_note", {"id": "1"})
	not d.allow
	d.reasons == ["notes_delete_note requires role editor"]
}

test_tool_requiring_a_role_is_allowed_with_it if {
	mcp.decision.allow with input as call("acme", ["editor"], "notes_delete_note", {"id": "1"})
}

test_every_deny_reason_is_given if {
	d := mcp.decision with input as call("globex", [], "notes_delete_note", {})
	d.reasons == ["notes_delete_note requires role editor", "tool notes_delete_note is not allowed for tenant globex"]
}

test_unknown_tenant_may_not_call if {
	d := mcp.decision with input as call("initech", [], "toolbox_calculate", {})
	not d.allow
	d.reasons == ["unknown tenant initech"]
}

# --- audit obligation ---------------------------------------------------------------------------

test_arguments_of_an_exempt_tool_are_not_audited if {
	d := mcp.decision with input as call("acme", [], "notes_add_note", {"text": "secret"})
	d.allow
	d.obligations == {"audit_arguments": false}
}

test_arguments_of_an_exempt_tool_are_not_audited_on_deny if {
	d := mcp.decision with input as call("globex", [], "notes_add_note", {"text": "secret"})
	not d.allow
	d.obligations == {"audit_arguments": false}
}

test_arguments_of_other_tools_are_audited if {
	d := mcp.decision with input as call("acme", [], "notes_search_notes", {"query": "x"})
	d.obligations == {"audit_arguments": true}
}

# --- prompts/get and resources/read -------------------------------------------------------------

test_tenant_may_get_a_prompt_its_patterns_match if {
	d := mcp.decision with input as get_prompt("acme", "notes_summarize")
	d.allow
	d.reasons == ["tenant acme may get notes_*"]
}

test_tenant_may_not_get_a_prompt_outside_its_patterns if {
	d := mcp.decision with input as get_prompt("globex", "notes_summarize")
	not d.allow
	d.reasons == ["prompt notes_summarize is not allowed for tenant globex"]
}

test_tenant_may_read_a_resource_of_its_servers if {
	d := mcp.decision with input as read("acme", [], "notes", "notes://index")
	d.allow
	d.reasons == ["tenant acme may read from server notes"]
}

test_tenant_may_not_read_a_resource_of_other_servers if {
	d := mcp.decision with input as read("globex", [], "notes", "notes://index")
	not d.allow
	d.reasons == ["resource notes+notes://index is not allowed for tenant globex"]
}

test_admin_may_read_any_resource if {
	mcp.decision.allow with input as read("globex", ["admin"], "notes", "notes://index")
}

# --- lists --------------------------------------------------------------------------------------

test_tool_list_shows_only_the_tools_the_tenant_may_call if {
	d := mcp.decision with input as listing("globex", [], "mcp.tools/list", "tools", tools)
	d.allow
	d.obligations.visible == ["toolbox_calculate", "toolbox_hash_text"]
	d.reasons == ["tenant globex may see 2 of 4 tools"]
}

test_tool_list_of_a_narrow_tenant_hides_unlisted_tools if {
	d := mcp.decision with input as listing("public", [], "mcp.tools/list", "tools", tools)
	d.obligations.visible == ["toolbox_calculate"]
}

test_admin_sees_every_tool if {
	d := mcp.decision with input as listing("public", ["admin"], "mcp.tools/list", "tools", tools)
	d.obligations.visible == sort(tools)
}

test_unknown_tenant_sees_nothing_and_is_told_why if {
	d := mcp.decision with input as listing("initech", [], "mcp.tools/list", "tools", tools)
	d.allow
	d.obligations.visible == []
	d.reasons == ["unknown tenant initech"]
}

test_prompt_list_uses_the_tool_patterns if {
	prompts := ["notes_summarize", "toolbox_explain"]
	d := mcp.decision with input as listing("globex", [], "mcp.prompts/list", "prompts", prompts)
	d.obligations.visible == ["toolbox_explain"]
}

test_resource_list_filters_by_server if {
	items := ["notes+notes://index", "toolbox+toolbox://units", "weather+weather://today"]
	d := mcp.decision with input as listing("globex", [], "mcp.resources/list", "resources", items)
	d.obligations.visible == ["toolbox+toolbox://units"]
}

test_resource_server_is_the_text_before_the_first_plus if {
	items := ["toolbox+notes+x://y", "notes+toolbox+x://y", "toolbox"]
	d := mcp.decision with input as listing("globex", [], "mcp.resources/list", "resources", items)
	d.obligations.visible == ["toolbox+notes+x://y"]
}

test_list_decisions_audit_arguments if {
	d := mcp.decision with input as listing("acme", [], "mcp.tools/list", "tools", tools)
	d.obligations.audit_arguments == true
}

# --- anything else ------------------------------------------------------------------------------

test_unsupported_action_is_denied if {
	sampling := object.union(call("acme", ["admin"], "notes_search_notes", {}), {"action": "mcp.sampling/createMessage"})
	d := mcp.decision with input as sampling
	not d.allow
	d.reasons == ["unsupported action mcp.sampling/createMessage"]
}

test_decision_is_defined_for_an_empty_input if {
	d := mcp.decision with input as {}
	not d.allow
	d.reasons == ["no rule permits this request"]
}

test_listed_resources_use_the_server_map_when_the_gateway_gives_one if {
	base := listing("globex", [], "mcp.resources/list", "resources", ["test://static-text", "notes://index"])
	doc := object.union(base, {"resource": {"servers": {"test://static-text": "toolbox", "notes://index": "notes"}}})
	d := mcp.decision with input as doc
	d.obligations.visible == ["test://static-text"]
}

test_an_unmapped_resource_without_namespace_is_not_visible if {
	d := mcp.decision with input as listing("globex", [], "mcp.resources/list", "resources", ["test://x"])
	d.obligations.visible == []
}

complete(tenant, kind, id, server) := {
	"version": 1,
	"subject": subject(tenant, []),
	"action": "mcp.completion/complete",
	"resource": {"kind": kind, "id": id, "server": server},
	"arguments": {},
}

test_completing_an_allowed_prompt_is_allowed if {
	d := mcp.decision with input as complete("acme", "prompt", "notes_summarize_notes", "notes")
	d.allow
}

test_completing_a_prompt_outside_the_allow_list_is_denied if {
	d := mcp.decision with input as complete("globex", "prompt", "notes_summarize_notes", "notes")
	not d.allow
	d.reasons == ["completion target notes_summarize_notes is not allowed for tenant globex"]
}

test_completing_a_template_of_an_allowed_server_is_allowed if {
	d := mcp.decision with input as complete("globex", "resource", "toolbox+toolbox://unit/{name}", "toolbox")
	d.allow
}

test_completing_a_template_of_another_server_is_denied if {
	d := mcp.decision with input as complete("globex", "resource", "notes+notes://note/{note_id}", "notes")
	not d.allow
}

# --- mcp.tools/result (the post-call phase) and the obligations beyond the audit ----------------

tool_result(tenant, roles, tool, size) := object.union(call(tenant, roles, tool, {}), {
	"action": "mcp.tools/result",
	"result": {"content": [], "isError": false, "size_bytes": size},
})

test_a_known_tenant_receives_the_result_of_its_call if {
	d := mcp.decision with input as tool_result("acme", [], "notes_read_note", 10)
	d.allow
	d.reasons == ["tenant acme may receive results of its allowed calls"]
	d.obligations == {"audit_arguments": true}
}

test_an_unknown_tenant_receives_no_result if {
	d := mcp.decision with input as tool_result("initech", [], "notes_read_note", 10)
	not d.allow
	d.reasons == ["unknown tenant initech"]
}

test_an_admin_of_an_unknown_tenant_receives_results if {
	d := mcp.decision with input as tool_result("initech", ["admin"], "notes_read_note", 10)
	d.allow
	d.reasons == ["role admin may receive any tool result"]
}

test_note_bodies_are_redacted_from_results_for_auditors if {
	read := mcp.decision with input as tool_result("acme", ["auditor"], "notes_read_note", 10)
	read.obligations.redact_result == ["body"]
	search := mcp.decision with input as tool_result("acme", ["auditor"], "notes_search_notes", 10)
	search.obligations.redact_result == ["result.*.body"]
}

test_note_bodies_are_not_redacted_for_other_roles if {
	d := mcp.decision with input as tool_result("acme", ["editor"], "notes_read_note", 10)
	not d.obligations.redact_result
}

test_auditor_searches_are_capped_at_20 if {
	d := mcp.decision with input as call("acme", ["auditor"], "notes_search_notes", {"query": "x", "limit": 30})
	d.allow
	d.obligations.cap_arguments == {"limit": 20}
}

test_the_lowest_cap_of_several_roles_holds if {
	caps := {"auditor": {"notes_search_notes": {"limit": 20}}, "intern": {"notes_search_notes": {"limit": 5}}}
	d := mcp.decision with input as call("acme", ["auditor", "intern"], "notes_search_notes", {"limit": 30})
		with data.meshgate.role_argument_caps as caps
	d.obligations.cap_arguments == {"limit": 5}
}

test_searches_of_other_roles_are_not_capped if {
	d := mcp.decision with input as call("acme", ["editor"], "notes_search_notes", {"query": "x", "limit": 30})
	not d.obligations.cap_arguments
}

test_the_argument_limit_still_denies_a_capped_role if {
	d := mcp.decision with input as call("acme", ["auditor"], "notes_search_notes", {"limit": 80})
	not d.allow
	not d.obligations.cap_arguments
}

test_anonymous_calls_require_pinned_tools_and_carry_a_rate_class if {
	d := mcp.decision with input as call("public", [], "toolbox_calculate", {"expression": "1+1"})
	d.allow
	d.obligations == {"audit_arguments": true, "require_pinned": true, "rate_class": "anonymous"}
}

test_other_tenants_calls_neither_require_pins_nor_carry_a_rate_class if {
	d := mcp.decision with input as call("globex", [], "toolbox_calculate", {"expression": "1+1"})
	d.allow
	d.obligations == {"audit_arguments": true}
}

test_a_denied_call_carries_no_enforcement_obligations if {
	d := mcp.decision with input as call("public", [], "toolbox_hash_text", {})
	not d.allow
	d.obligations == {"audit_arguments": true}
}

test_anonymous_results_are_limited_in_size if {
	d := mcp.decision with input as tool_result("public", [], "toolbox_calculate", 10)
	d.obligations.max_result_bytes == 65536
}

test_other_tenants_results_are_not_limited_in_size if {
	d := mcp.decision with input as tool_result("acme", [], "toolbox_calculate", 10)
	not d.obligations.max_result_bytes
}

test_listed_arguments_are_redacted_before_forwarding if {
	d := mcp.decision with input as call("acme", [], "notes_add_note", {"title": "t", "body": "b"})
		with data.meshgate.redacted_arguments as {"notes_add_note": ["body", "author.email"]}
	d.obligations.redact_arguments == ["author.email", "body"]
}

test_no_arguments_are_redacted_by_the_shipped_data if {
	d := mcp.decision with input as call("acme", [], "notes_add_note", {"title": "t", "body": "b"})
	not d.obligations.redact_arguments
}

# --- models -------------------------------------------------------------------------------------

model_call(tenant, roles, max_tokens) := {
	"version": 1,
	"subject": subject(tenant, roles),
	"action": "mcp.tools/call",
	"resource": {"kind": "tool", "id": "smollm2_generate", "server": "smollm2", "name": "generate"},
	"arguments": {"prompt": "hi", "max_tokens": max_tokens},
}

test_tenant_granted_a_model_may_call_its_tool_under_a_token_budget if {
	d := mcp.decision with input as model_call("public", [], 500)
	d.allow
	d.reasons == ["tenant public may use model smollm2"]
	d.obligations.max_tokens == 64
}

test_tenant_without_a_model_grant_may_not_call_its_tool if {
	d := mcp.decision with input as model_call("acme", [], 10)
		with data.meshgate.model_access as {"smollm2": {"globex": {"max_tokens": 8}}}
	not d.allow
	d.reasons == ["tool smollm2_generate is not allowed for tenant acme"]
}

test_model_tool_is_listed_only_for_tenants_granted_the_model if {
	tools_list := {
		"version": 1,
		"subject": subject("public", []),
		"action": "mcp.tools/list",
		"resource": {
			"kind": "catalog", "id": "tools",
			"items": ["smollm2_generate", "toolbox_calculate"],
			"servers": {"smollm2_generate": "smollm2", "toolbox_calculate": "toolbox"},
		},
		"arguments": {},
	}
	d := mcp.decision with input as tools_list
	d.obligations.visible == ["smollm2_generate", "toolbox_calculate"]
	denied := mcp.decision with input as tools_list with data.meshgate.model_access as {}
	denied.obligations.visible == ["toolbox_calculate"]
}
