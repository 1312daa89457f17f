"""Upstream MCP connections, through the official `mcp` client (stdio and streamable HTTP)."""
