package meshgate.mcp

# The conformance run tests the protocol relay, not the policy: every request is allowed.
decision := {"allow": true, "reasons": ["conformance run"], "obligations": {"visible": object.get(input.resource, "items", []), "audit_arguments": true}}
