"""Runnable examples of meshgate: upstream MCP servers, agents and client snippets, all run in tests."""
