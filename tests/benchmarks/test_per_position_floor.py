"""The floor benchmark's gather reads the rows it claims to: checked on the CPU."""

import torch

from benchmarks.per_position_floor import gather_kernel


def test_gather_sums_the_rows_each_program_names():
    dim, catalog, per_program = 24, 9, 40
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(catalog + 1, dim, generator=generator)
    table[0] = 0  # the padding row, which lanes past the last id read
    ids = torch.randint(1, catalog + 1, (100,), generator=generator, dtype=torch.int32)
    grid = (3,)  # 40 + 40 + 20 ids; steps of 16 rows leave lanes past the end
    sums = torch.empty(grid[0], dim)
    gather_kernel[grid](table, ids, sums, ids.numel(), per_program, dim, ROWS=16, BLOCK_D=32)
    expected = torch.stack([table[ids[i:i + per_program].long()].sum(0)
                            for i in range(0, 100, per_program)])
    torch.testing.assert_close(sums, expected)
