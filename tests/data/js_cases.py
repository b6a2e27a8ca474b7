"""Cases for the JavaScript install's trust tests: two small models; building
the second appends code to the file ``$TP_APPEND_TO`` (the cached Node runner)
that writes ``$TP_APPEND_MARKER`` if Node ever runs it, the probe's "a file
changed after the install was checked, during the run"."""

import json
import os

import torch

from torchparity import register_model


def _first() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh())


def _second() -> torch.nn.Module:
    target = os.environ.get("TP_APPEND_TO")
    if target:  # runs after the first cell checked the install, before this cell's Node starts
        marker = json.dumps(os.environ["TP_APPEND_MARKER"])
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(f"\nimport('node:fs').then((fs) => fs.writeFileSync({marker}, 'ran'));\n")
    return torch.nn.Sequential(torch.nn.Linear(8, 3), torch.nn.Sigmoid())


def _inputs(gen, batch):
    return (gen.normal(batch, 8),)


register_model("js_first", _first, _inputs, batch=2, suites=["js_trust"])
register_model("js_second", _second, _inputs, batch=2, suites=["js_trust"])
