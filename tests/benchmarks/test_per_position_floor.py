"""The floor benchmark's kernels move the traffic they claim to: checked on the CPU."""

import torch

from benchmarks.per_position_floor import blocks, gather_kernel, scatter_kernel


def test_gather_sums_each_tokens_rows_and_scatter_adds_into_them():
    tokens, dim, negatives, catalog = 4, 24, 20, 9
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(catalog + 1, dim, generator=generator)
    table[0] = 0  # the padding row, which lanes past N read
    hidden = torch.randn(tokens, dim, generator=generator)
    ids = torch.randint(1, catalog + 1, (tokens, negatives), generator=generator,
                        dtype=torch.int32)
    shape = {**blocks(dim), "BLOCK_T": 2}
    grid = (tokens // 2,)

    sums = torch.empty(tokens, dim)
    gather_kernel[grid](table, ids, sums, negatives, dim, **shape)
    torch.testing.assert_close(sums, table[ids.long()].sum(1))

    grad = torch.zeros(catalog + 1, dim)
    scatter_kernel[grid](hidden, ids, grad, negatives, dim, **shape)
    expected = torch.zeros(catalog + 1, dim).index_add_(
        0, ids.long().flatten(), hidden.repeat_interleave(negatives, 0))
    torch.testing.assert_close(grad, expected)
