"""Example A2A agents of two organisations: finance's "ledger" and travel's "planner" (a2a-sdk 1.3)."""
