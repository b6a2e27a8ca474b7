import pytest

from torchparity.axes.matrix import expand, parse_shard, shard
from torchparity.cases.case import Case


def _cases(n):
    return [Case(f"c{i}", "model", lambda: None, lambda g, b: ()) for i in range(n)]


def test_expand_is_the_full_product_case_major():
    cells = expand(_cases(3), ["cpu", "cuda"], ["fp32", "fp16"], ["eager", "x"], suite="s")
    assert len(cells) == 3 * 2 * 2 * 2
    assert len({c.id for c in cells}) == len(cells)
    assert [c.case for c in cells[:8]] == ["c0"] * 8


@pytest.mark.parametrize("count", [1, 2, 3, 7, 40])
def test_shards_are_disjoint_and_cover_everything(count):
    cells = expand(_cases(11), ["cpu", "cuda", "mps"], ["fp64", "fp32", "fp16", "bf16"], ["eager"])
    parts = [shard(cells, i, count) for i in range(1, count + 1)]
    ids = [c.id for part in parts for c in part]
    assert sorted(ids) == sorted(c.id for c in cells)
    assert len(ids) == len(set(ids))
    if count <= 11:
        assert all(parts)  # no empty shard while there are enough cases


def test_shard_is_deterministic_and_keeps_a_case_together():
    cells = expand(_cases(5), ["cpu"], ["fp32", "fp16"], ["eager"])
    assert shard(cells, 2, 3) == shard(list(reversed(cells)), 2, 3)[::-1]
    for i in (1, 2, 3):
        for case in {c.case for c in shard(cells, i, 3)}:
            assert all(c in shard(cells, i, 3) for c in cells if c.case == case)


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "a/b", "1", "1/2/3", ""])
def test_malformed_shard(text):
    with pytest.raises(ValueError, match="shard"):
        parse_shard(text)


def test_parse_shard():
    assert parse_shard("2/5") == (2, 5)
