"""The model zoo: real architectures built from their libraries' configs
(tiny configs, random weights, no download) across every deployment path
(docs/zoo.md).

Suites: ``zoo`` (every architecture), ``zoo-ci`` (10 of them, sized for
CI) and ``generate-ci`` (3 decoders and 1 encoder-decoder for ``--mode
generate``, docs/generation.md). Each case is ``zoo.<name>`` with keyword inputs as the model's processor
would give them. Registering imports no model library: where transformers
(the ``zoo`` extra), torchvision or timm is not installed, its cases stay
listed and their cells are skip rows saying so.
"""

from __future__ import annotations

import importlib.util

from torchparity import register_model
from torchparity.suites.zoo import expectations_file
from torchparity.suites.zoo.arch import Arch
from torchparity.suites.zoo.classic import CLASSIC
from torchparity.suites.zoo.speech import SPEECH
from torchparity.suites.zoo.text import DECODERS, ENCODERS, SEQ2SEQ
from torchparity.suites.zoo.vision import DETECTION, MULTIMODAL, VISION

SUITE, CI_SUITE = "zoo", "zoo-ci"
# --mode generate's ci selection (docs/generation.md): 3 decoders and 1 encoder-decoder.
GENERATE_CI_SUITE = "generate-ci"
ARCHS: list[Arch] = [
    *ENCODERS,
    *DECODERS,
    *SEQ2SEQ,
    *SPEECH,
    *VISION,
    *DETECTION,
    *MULTIMODAL,
    *CLASSIC,
]
# How to get each library a zoo model needs.
INSTALL = {
    "transformers": "pip install 'torchparity[zoo]'",
    "torchvision": "pip install torchvision (the build matching your torch)",
    "timm": "pip install timm",
}


def unavailable(requires: str) -> str | None:
    """Why a model from ``requires`` cannot be built here (None: it can be tried)."""
    if importlib.util.find_spec(requires) is None:
        return f"{requires} is not installed ({INSTALL[requires]})"
    return None


def _register(arch: Arch) -> None:
    case = register_model(
        f"zoo.{arch.name}",
        arch.build,
        arch.inputs,
        suites=[SUITE]
        + ([CI_SUITE] if arch.ci else [])
        + ([GENERATE_CI_SUITE] if arch.generate_ci else []),
        batch=arch.batch,
        reinit_weights=arch.reinit_weights,
        tags=("zoo", arch.family, arch.requires, *arch.tags),
        description=f"{arch.family}: {arch.description}",
        generation=arch.generation,
    )
    case.extra["zoo_family"] = arch.family
    reason = unavailable(arch.requires)
    if reason:
        case.extra["unavailable"] = reason


expectations_file.register()
for _arch in ARCHS:
    _register(_arch)
