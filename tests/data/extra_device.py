"""A user plugin adding a device kind: the host CPU under another name, with a
clock that counts its calls (as an xpu or other accelerator entry would)."""

import torch

from torchparity import Device, register_device


class HostAlias(Device):
    name = "host"
    blocks = 0

    def torch_device(self) -> torch.device:
        return torch.device("cpu")

    def time_block(self, fn, number):
        HostAlias.blocks += 1
        return super().time_block(fn, number)

    def configure(self, options):
        return {"host_alias_blocks": HostAlias.blocks}


register_device(HostAlias())
