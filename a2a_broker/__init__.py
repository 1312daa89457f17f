"""The A2A broker: agent cards, discovery by skill, and governed delegation between organisations' agents.

`app.py` wires it (a2a-sdk routes for JSON-RPC, HTTP+JSON, gRPC); `handler.py` is the one request handler
behind them; `policy.py` decides every call on the shared decision point; `relay.py` reaches targets with
the broker's own credentials; `delegation.py` holds the chain, its seal and task ownership; `discovery.py`,
`admin.py`, `cards.py` and `launcher.py` serve, register and launch agents.
"""
