"""The governed MCP gateway: federation of upstream MCP servers behind one policy-checked catalog."""
