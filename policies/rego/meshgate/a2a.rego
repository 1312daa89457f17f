# The default policy of the meshgate A2A broker: which agent may delegate to which, and how far.
#
# Queried at data.meshgate.a2a.decision with the input document of policies/input.py (version 1):
# `subject.tenant` is the source organisation, `resource.organization` the target agent's,
# `resource.agent` / `resource.skill` what is asked for and `delegation` the hops the call came
# through (the current one last). The decision is defined for every input:
# {"allow": bool, "reasons": [string], "obligations": {...}}.
#
# - Within one organisation, delegation is allowed.
# - Across organisations, only skills granted in data.meshgate.a2a_grants[source][target].
# - A chain longer than data.meshgate.a2a_max_delegation_depth hops is denied, and so is a hop whose
#   scopes are not a subset of the hop before it (scopes must narrow, or stay, at each hop).
# - A message across organisations carries obligations: no file parts, at most
#   data.meshgate.a2a_cross_org_max_message_bytes (64 KiB), and the paths of
#   data.meshgate.a2a_redacted_parts[source] redacted from its data parts (policies/README.md).
package meshgate.a2a

decision := {
	"allow": allow,
	"reasons": reasons,
	"obligations": obligations,
}

message_actions := {"a2a.message/send", "a2a.message/stream"}

default cross_org_max_message_bytes := 65536

cross_org_max_message_bytes := data.meshgate.a2a_cross_org_max_message_bytes

default obligations := {}

obligations := object.union(cross_org_obligations, token_budget) if input.action in message_actions

default cross_org_obligations := {}

cross_org_obligations := object.union(
	{"deny_file_parts": true, "max_message_bytes": cross_org_max_message_bytes},
	redaction,
) if not same_org

# Models (agents the mesh fronts for its inference nodes): an organisation may use those
# data.meshgate.model_access grants it, with at most `max_tokens` tokens per generation.
model_access := data.meshgate.model_access[object.get(input.resource, "agent", "")][source_org]

default token_budget := {}

token_budget := {"max_tokens": model_access.max_tokens} if is_number(model_access.max_tokens)

default redaction := {}

redaction := {"redact_parts": paths} if {
	paths := data.meshgate.a2a_redacted_parts[source_org]
	count(paths) > 0
}

# Sending, streaming, reading or cancelling a task the caller created through the broker, and managing
# that task's push-notification configs (ownership itself is checked by the broker before it asks).
supported_actions := {
	"a2a.message/send", "a2a.message/stream", "a2a.tasks/get", "a2a.tasks/cancel",
	"a2a.tasks/pushNotificationConfig/create", "a2a.tasks/pushNotificationConfig/get",
	"a2a.tasks/pushNotificationConfig/list", "a2a.tasks/pushNotificationConfig/delete",
}

default max_depth := 2

max_depth := data.meshgate.a2a_max_delegation_depth

source_org := input.subject.tenant

target_org := object.get(input.resource, "organization", "")

skill := object.get(input.resource, "skill", "")

chain := object.get(input, "delegation", [])

same_org if {
	source_org != ""
	source_org == target_org
}

granted if {
	skill != ""
	skill in data.meshgate.a2a_grants[source_org][target_org]
}

granted if model_access

denials contains msg if {
	not input.action in supported_actions | {discover_action, admin_action}
	msg := sprintf("action %s is not served by the A2A policy", [input.action])
}

# A denial names only what the caller asked for (the agent id, the skill its message names) and its own
# organisation: never the target's organisation nor a skill read from the target's card, so an unknown
# agent (decided with organisation "") and an existing one the caller may not reach read the same (A2A
# spec §13.1: do not reveal existence). A task's owner already knows its agent: task denials name its skill.
asked_skill := object.get(object.get(input, "message", {}), "skill", "") if input.action in message_actions

asked_skill := skill if not input.action in message_actions

denials contains msg if {
	input.action in supported_actions
	not same_org
	not granted
	asked_skill == ""
	msg := sprintf("organisation %s has no grant to reach agent %s", [source_org, input.resource.agent])
}

denials contains msg if {
	input.action in supported_actions
	not same_org
	not granted
	asked_skill != ""
	msg := sprintf("organisation %s has no grant for skill %s of agent %s", [
		source_org, asked_skill, input.resource.agent,
	])
}

denials contains msg if {
	count(chain) > max_depth
	msg := sprintf("delegation chain of %d hops exceeds the maximum of %d", [count(chain), max_depth])
}

denials contains msg if {
	some i, hop in chain
	i > 0
	previous := chain[i - 1]
	widened := {s | some s in hop.scopes; not s in previous.scopes}
	count(widened) > 0
	msg := sprintf("hop %d (agent %s) widens the scopes of hop %d with %s", [
		i + 1, hop.agent, i, concat(", ", sort(widened)),
	])
}

grants contains msg if {
	same_org
	msg := sprintf("same organisation %s", [source_org])
}

grants contains msg if {
	not same_org
	granted
	not model_access
	msg := sprintf("organisation %s may use skill %s of organisation %s", [source_org, skill, target_org])
}

grants contains msg if {
	not same_org
	model_access
	msg := sprintf("organisation %s may use model %s", [source_org, input.resource.agent])
}

# Discovery: always allowed; the `visible` obligation names the candidates (`resource.agents`: id ->
# {organization, skills}) the subject may reach: its own organisation's agents, and agents offering a
# skill granted to its organisation.
discover_action := "a2a.agents/discover"

candidates := object.get(input.resource, "agents", {})

reachable(id) if {
	source_org != ""
	candidates[id].organization == source_org
}

reachable(id) if data.meshgate.model_access[id][source_org]

reachable(id) if {
	some s in candidates[id].skills
	s in data.meshgate.a2a_grants[source_org][candidates[id].organization]
}

visible := sort([id | some id, _ in candidates; reachable(id)])

obligations := {"visible": visible} if input.action == discover_action

grants contains msg if {
	input.action == discover_action
	msg := sprintf("organisation %s may reach %d of %d agents", [source_org, count(visible), count(candidates)])
}

# Registering, listing and removing agents over the broker's admin API: role `admin` only.
admin_action := "a2a.admin"

grants contains msg if {
	input.action == admin_action
	"admin" in input.subject.roles
	msg := sprintf("%s holds role admin", [input.subject.id])
}

denials contains msg if {
	input.action == admin_action
	not "admin" in input.subject.roles
	msg := sprintf("%s may not administer the broker's agents: role admin required", [input.subject.id])
}

default allow := false

allow if {
	count(denials) == 0
	count(grants) > 0
}

reasons := sort(denials) if count(denials) > 0

reasons := sort(grants) if count(denials) == 0
