# The default policy of the meshgate MCP gateway: who may list, call, read and get what.
#
# Queried at data.meshgate.mcp.decision with the input document of policies/input.py (version 1).
# The decision is defined for every input: {"allow": bool, "reasons": [string], "obligations": {...}}.
# Tenants, argument limits, role requirements, audit exemptions and the data behind the other
# obligations (policies/README.md has the table) are data: policies/data/*.json.
package meshgate.mcp

decision := {
	"allow": allow,
	"reasons": reasons,
	"obligations": obligations,
}

# --- actions ----------------------------------------------------------------------------------

# Actions on one tool, prompt or resource: allowed only when granted and nothing denies them.
single_actions := {"mcp.tools/call", "mcp.prompts/get", "mcp.resources/read", "mcp.completion/complete"}

# Listing is always allowed; the `visible` obligation filters what the subject sees.
list_actions := {"mcp.tools/list", "mcp.prompts/list", "mcp.resources/list"}

# After an allowed tools/call, its result is decided before it is returned (the post-call phase).
result_action := "mcp.tools/result"

supported_actions := (single_actions | list_actions) | {result_action}

# What each action calls the thing it acts on, for reasons.
kind_of := {
	"mcp.tools/call": "tool",
	"mcp.prompts/get": "prompt",
	"mcp.resources/read": "resource",
	"mcp.completion/complete": "completion target",
	"mcp.tools/list": "tool",
	"mcp.prompts/list": "prompt",
	"mcp.resources/list": "resource",
	"mcp.tools/result": "tool result",
}

verb_of := {
	"mcp.tools/call": "call",
	"mcp.prompts/get": "get",
	"mcp.resources/read": "read",
	"mcp.completion/complete": "complete",
}

# --- who is asking ----------------------------------------------------------------------------

tenant := data.meshgate.tenants[input.subject.tenant]

known_tenant if tenant

# Admins may list, call, get and read everything; argument limits still hold for them.
is_admin if "admin" in input.subject.roles

# Tool and prompt ids (`<server>_<name>`) the tenant's patterns allow. The globs have no
# delimiter (null), so `notes_*` covers every notes tool whatever its name contains.
id_allowed(id) if is_admin

id_allowed(id) if {
	some pattern in tenant.tools
	glob.match(pattern, null, id)
}

# Models (the gateway fronts each as upstream `<model>`, tool `<model>_generate`): a tenant may use the
# models data.meshgate.model_access grants it, whatever its `tools` patterns say.
model_access := data.meshgate.model_access[input.resource.server][input.subject.tenant]

id_allowed(id) if data.meshgate.model_access[input.resource.servers[id]][input.subject.tenant]

# The server of a listed resource: the gateway names it in `input.resource.servers` (a map id ->
# server); without it, a namespaced id `<server>+<original-uri>` names it before the first "+".
server_of(id) := input.resource.servers[id]

server_of(id) := substring(id, 0, indexof(id, "+")) if {
	not input.resource.servers[id]
	contains(id, "+")
}

resource_allowed(id) if {
	is_admin
	server_of(id)
}

resource_allowed(id) if server_of(id) in tenant.servers

# --- why an action is allowed -----------------------------------------------------------------

# Tools and prompts share one allow-list: the tenant's `tools` patterns.
grant contains sprintf("tenant %s may %s %s", [input.subject.tenant, verb_of[input.action], pattern]) if {
	input.action in {"mcp.tools/call", "mcp.prompts/get"}
	some pattern in tenant.tools
	glob.match(pattern, null, input.resource.id)
}

grant contains sprintf("tenant %s may use model %s", [input.subject.tenant, input.resource.server]) if {
	input.action == "mcp.tools/call"
	model_access
}

grant contains sprintf("tenant %s may read from server %s", [input.subject.tenant, input.resource.server]) if {
	input.action == "mcp.resources/read"
	input.resource.server in tenant.servers
}

# Completing an argument is allowed where using its prompt or resource template is.
grant contains sprintf("tenant %s may complete %s", [input.subject.tenant, pattern]) if {
	input.action == "mcp.completion/complete"
	input.resource.kind == "prompt"
	some pattern in tenant.tools
	glob.match(pattern, null, input.resource.id)
}

grant contains sprintf("tenant %s may complete resources of server %s", [input.subject.tenant, input.resource.server]) if {
	input.action == "mcp.completion/complete"
	input.resource.kind == "resource"
	input.resource.server in tenant.servers
}

grant contains sprintf("role admin may %s any %s", [verb_of[input.action], kind_of[input.action]]) if {
	input.action in single_actions
	is_admin
}

grant contains msg if {
	input.action in list_actions
	known_tenant
	not is_admin
	kind := kind_of[input.action]
	msg := sprintf("tenant %s may see %d of %d %ss", [input.subject.tenant, count(visible), count(candidates), kind])
}

grant contains sprintf("role admin may see every %s", [kind_of[input.action]]) if {
	input.action in list_actions
	is_admin
}

# The call was allowed before it ran; its result is returned under the result obligations below.
grant contains sprintf("tenant %s may receive results of its allowed calls", [input.subject.tenant]) if {
	input.action == result_action
	known_tenant
}

grant contains "role admin may receive any tool result" if {
	input.action == result_action
	is_admin
}

# --- why an action is denied ------------------------------------------------------------------

deny contains sprintf("unsupported action %v", [input.action]) if {
	not input.action in supported_actions
}

deny contains sprintf("unknown tenant %v", [input.subject.tenant]) if {
	input.action in supported_actions
	not known_tenant
	not is_admin
}

deny contains msg if {
	input.action in single_actions
	known_tenant
	count(grant) == 0
	msg := sprintf("%s %v is not allowed for tenant %s", [kind_of[input.action], input.resource.id, input.subject.tenant])
}

# A limited argument must be a number no greater than its maximum.
deny contains msg if {
	input.action == "mcp.tools/call"
	some name, limit in data.meshgate.argument_limits[input.resource.id]
	value := input.arguments[name]
	is_number(value)
	value > limit.max
	msg := sprintf("argument %s=%v exceeds the maximum %v for %s", [name, value, limit.max, input.resource.id])
}

# A non-number would slip past the comparison above, so it is denied outright.
deny contains sprintf("argument %s of %s must be a number", [name, input.resource.id]) if {
	input.action == "mcp.tools/call"
	some name, _ in data.meshgate.argument_limits[input.resource.id]
	value := input.arguments[name]
	not is_number(value)
}

deny contains sprintf("%s requires role %s", [input.resource.id, role]) if {
	input.action == "mcp.tools/call"
	not is_admin
	some role in data.meshgate.required_roles[input.resource.id]
	not role in input.subject.roles
}

# --- the decision -----------------------------------------------------------------------------

default allow := false

allow if input.action in list_actions

allow if {
	input.action in single_actions | {result_action}
	count(grant) > 0
	count(deny) == 0
}

# Deny reasons first: a list answer from an unknown tenant still says why it sees nothing.
reasons := sort(deny) if {
	count(deny) > 0
} else := sort(grant) if {
	count(grant) > 0
} else := ["no rule permits this request"]

obligations := object.union(base_obligations, extra_obligations)

base_obligations := {"audit_arguments": audit_arguments, "visible": visible} if {
	input.action in list_actions
} else := {"audit_arguments": audit_arguments}

# --- obligations beyond the audit: only on an allow, and only when they say something ---------

# Arguments the upstream must never see (e.g. personal data a tool does not need).
extra_obligations["redact_arguments"] := paths if {
	allow
	input.action in {"mcp.tools/call", "mcp.prompts/get"}
	paths := sort(data.meshgate.redacted_arguments[input.resource.id])
	count(paths) > 0
}

# Numeric arguments lowered to a role's cap (the argument limits above still deny outright).
extra_obligations["cap_arguments"] := argument_caps if {
	allow
	input.action == "mcp.tools/call"
	count(argument_caps) > 0
}

# The most tokens one generation may produce for this tenant on this model.
extra_obligations["max_tokens"] := model_access.max_tokens if {
	allow
	input.action == "mcp.tools/call"
	is_number(model_access.max_tokens)
}

extra_obligations["require_pinned"] := true if {
	allow
	input.action == "mcp.tools/call"
	tenant.require_pinned == true
}

extra_obligations["rate_class"] := tenant.rate_class if {
	allow
	input.action == "mcp.tools/call"
	is_string(tenant.rate_class)
}

extra_obligations["redact_result"] := result_redactions if {
	allow
	input.action == result_action
	count(result_redactions) > 0
}

extra_obligations["max_result_bytes"] := tenant.max_result_bytes if {
	allow
	input.action == result_action
	is_number(tenant.max_result_bytes)
}

# With several capped roles, the lowest cap holds.
argument_caps[name] := min(caps) if {
	some role in input.subject.roles
	some name, _ in data.meshgate.role_argument_caps[role][input.resource.id]
	caps := [cap |
		some r in input.subject.roles
		cap := data.meshgate.role_argument_caps[r][input.resource.id][name]
	]
}

result_redactions := sort({path |
	some role in input.subject.roles
	some path in data.meshgate.role_result_redactions[role][input.resource.id]
})

# Arguments of exempt tools (secrets, personal data) never reach the audit log.
default audit_arguments := true

audit_arguments := false if input.resource.id in data.meshgate.audit_arguments_exempt

candidates contains id if {
	some id in input.resource.items
	is_string(id)
}

visible := sort([id | some id in candidates; id_allowed(id)]) if {
	input.action != "mcp.resources/list"
} else := sort([id | some id in candidates; resource_allowed(id)])
