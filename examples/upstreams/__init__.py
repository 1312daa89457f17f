"""Example upstream MCP servers that the gateway federates, in tests and demos.

`notes_server` (stdio, persistent notes), `toolbox_server` (streamable HTTP utilities),
`echo_server` (stdio or HTTP; echo, slow_echo, crash) and `conformance_server` (the fixtures the
official MCP conformance suite expects). Each module offers `build_server()` and a `main()` CLI.
"""
