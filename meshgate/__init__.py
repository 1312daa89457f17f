"""meshgate: the CLI, configuration, errors, identity and telemetry wiring shared by every component."""

from meshgate.errors import MeshError

__all__ = ["MeshError"]
__version__ = "0.1.0"
