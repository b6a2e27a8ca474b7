"""A stand-in for torch's OpInfo module whose entries lack attributes the
opinfo suite reads: TORCHPARITY_OPINFO_MODULE=tests.data.fake_opinfo makes
the suite's guard fail as it would after a private-API change."""


class OpInfo:
    def __init__(self, name: str) -> None:
        self.name = name  # no variant_test_name, op, sample_inputs, ...


op_db = [OpInfo("add"), OpInfo("sub")]
