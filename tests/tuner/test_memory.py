import itertools
import json
from dataclasses import replace

import pytest
import torch

from cce_tune.kernels.config import LossConfig
from cce_tune.kernels.memory import allocation, loss_memory, sparse_item_gradient
from cce_tune.models import SASRec, SASRecConfig
from cce_tune.models.sasrec_memory import activation_memory, parameter_bytes
from cce_tune.tuner.cli import main
from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.memory import (
    DatasetShape,
    MemoryProfile,
    check_described,
    dataset_bytes,
    estimate,
    solve,
    with_knob,
)
from cce_tune.tuner.memory_grid import (
    default_grid,
    launchable_groups,
    per_position_grid,
    sparse_grid,
    sparse_groups,
)
from cce_tune.tuner.memory_verify import calibrate, errors
from cce_tune.tuner.run_dir import TuneSettings
from cce_tune.tuner.sequences.config import TrainConfig

ML20M = DatasetShape(138_493, 26_744)


def test_parameter_bytes_match_the_module():
    config = SASRecConfig(num_items=1000, max_len=30, hidden=48, num_blocks=3, num_heads=2)
    model = SASRec(config)
    assert parameter_bytes(config) == sum(allocation(p.numel(), 4) for p in model.parameters())
    assert len(list(model.parameters())) == 2 + 12 * 3 + 2


def test_allocation_rounds_to_the_allocator_granule():
    assert allocation(1, 4) == 512
    assert allocation(128, 4) == 512
    assert allocation(129, 4) == 1024


def test_dataset_bytes_by_hand():
    # windows 10 x 6, targets + two histories 10 x 5, one (10,) int64 array; 512-byte blocks
    assert dataset_bytes(DatasetShape(10, 7), 5) == 512 + 3 * 512 + 512
    assert dataset_bytes(DatasetShape(1000, 7), 5) == 48_128 + 3 * 40_448 + 8_192


def test_fused_loss_holds_no_scores():
    """cce_minus keeps four floats per token, the two totals and the ids; no tokens x N
    term (per position, d(hidden)'s float32 directions too, tokens x d, and the counting
    sort's counts, chunks x the table's rows)."""
    tokens, items, dim = 1000, 50_000, 64
    per_token = allocation(4 * tokens, 4) + allocation(2, 4)
    small = loss_memory(LossConfig("cce_minus", num_negatives=128), tokens, items, dim, False)
    large = loss_memory(LossConfig("cce_minus", num_negatives=8192), tokens, items, dim, False)
    assert small.saved == per_token + allocation(128, 8)
    assert large.saved == per_token + allocation(8192, 8)
    # In-kernel per-position negatives: not even ids.
    drawn = LossConfig("cce_minus", num_negatives=8192, negative_mode="per_position",
                       in_kernel_negatives=True)
    directions = allocation(tokens * dim, 4)
    counts = allocation(1 * (items + 1), 4)  # 1,000 tokens of 8,193 pairs: one chunk
    assert (loss_memory(drawn, tokens, items, dim, False).saved
            == per_token + directions + counts)


@pytest.mark.parametrize("tokens, autocast, dim, directions, parts", [
    (1000, True, 64, True, 16), (1000, True, 32, True, 16), (1000, True, 256, True, 16),
    (1000, False, 32, False, 16), (1000, False, 64, False, 16), (1000, True, 512, False, 16),
    (51_200, True, 64, True, 5), (51_200, True, 256, True, 1), (131_072, True, 64, True, 2),
    (131_073, True, 64, True, 1), (300_000, True, 128, True, 1)])
def test_the_full_catalog_holds_directions_where_its_forward_writes_them(
        tokens, autocast, dim, directions, parts):
    """Over the full catalog, half-precision rows of up to 512 bytes
    (kernels.config.catalog_directions) have the forward write d(hidden)'s float32
    directions, held until the backward, and each part of the catalog its weighted rows in
    the forward: counted at the most parts the library may take (16, or with directions as
    many as 64 MiB of rows hold: none at all past 131,072 tokens of d 64), with their running
    maxima and sums."""
    from cce_tune.kernels import fused

    items = 50_000
    rows = torch.empty(8, dim, dtype=torch.bfloat16 if autocast else torch.float32)
    plan = fused._plan(rows, rows, id_source=1, gather=False, tiled=False, tile_size=1,
                       num_negatives=items, temperature=1.0, has_log_q=False,
                       sampled_softmax=False)
    assert plan.forward_directions == directions
    memory = loss_memory(LossConfig("cce"), tokens, items, dim, autocast)
    casts = allocation(tokens * dim, 2) + allocation((items + 1) * dim, 2) if autocast else 0
    per_token = allocation(4 * tokens, 4) + allocation(2, 4)
    held = allocation(tokens * dim, 4) if directions else 0
    assert memory.saved == casts + per_token + held
    in_parts = 0 if parts == 1 else (allocation(2 * parts * tokens, 4) + (
        allocation(parts * tokens * dim, 4) if directions else 0))
    assert memory.forward_extra == allocation(2 * tokens, 4) + allocation(1, 4) + in_parts


@pytest.mark.parametrize("autocast, dim", [(True, 256), (True, 64), (False, 256)])
def test_the_per_position_forward_holds_the_ids_it_draws_a_few_steps_ahead(autocast, dim):
    """Per position the forward draws its ids into a scratch, a few steps' per program
    (kernels.fused allocates it from the plan's tile: 16 tokens on the tensor cores, at half
    precision and d 129-256; 1 or 2 on the CUDA cores), on top of what the same loss with
    ids read from memory holds in its forward."""
    from cce_tune.kernels import config, fused

    tokens, items = 1000, 50_000
    drawn = LossConfig("cce_minus", num_negatives=511, negative_mode="per_position",
                       in_kernel_negatives=True)
    read = replace(drawn, in_kernel_negatives=False)
    rows = torch.empty(tokens, dim, dtype=torch.bfloat16 if autocast else torch.float32)
    plan = fused._plan(rows, rows, id_source=2, gather=True, tiled=False, tile_size=1,
                       num_negatives=511, temperature=1.0, has_log_q=False,
                       sampled_softmax=False)
    blocks = plan.blocks["forward"]
    assert plan.tensor_gather == (autocast and dim == 256)
    assert blocks.t == (16 if plan.tensor_gather else max(1, 1024 // (8 * dim)))
    extra = (loss_memory(drawn, tokens, items, dim, autocast).forward_extra
             - loss_memory(read, tokens, items, dim, autocast).forward_extra)
    assert extra == allocation(plan.programs(tokens) * config.DRAWN_STEPS * blocks.t
                               * blocks.n, 4)


def test_the_per_position_forward_holds_its_counts_where_they_are_few(monkeypatch):
    """Per position the forward counts the backward's pairs per chunk of tokens and table
    row (kernels.cce_buckets.count_own_pairs: ids drawn, or read on the CUDA cores) and holds
    them until the backward, which then needs no counts row of its own; a table of over
    MAX_FORWARD_COUNTS entries is left to the backward, and so are ids read on the tensor
    cores (half precision at d 256)."""
    from cce_tune.kernels import config

    loss = LossConfig("cce_minus", num_negatives=511, negative_mode="per_position",
                      in_kernel_negatives=True)
    read = replace(loss, in_kernel_negatives=False)
    ids, counts = allocation(131_072 * 511, 8), allocation(4 * 26_745, 4)
    for dim, autocast, read_counted in ((64, False, True), (256, True, False)):
        assert (loss_memory(read, 131_072, 26_744, dim, autocast).saved - ids
                == loss_memory(loss, 131_072, 26_744, dim, autocast).saved
                - (0 if read_counted else counts))
    # A sparse item gradient leaves the table float32 (no bf16 copy of it is saved): the
    # CUDA cores even under autocast, which count ids read.
    sparse = replace(read, sparse_item_grad=True)
    table_cast = allocation(26_745 * 256, 2)
    assert (loss_memory(sparse, 131_072, 26_744, 256, True).saved
            - loss_memory(read, 131_072, 26_744, 256, True).saved == counts - table_cast)
    tokens, items = 131_072, 26_744  # 32,768 tokens (2^24 pairs) a chunk: 4 chunks
    # d 64 in float32: the counting sort's arrays are the backward's largest moment.
    counted = loss_memory(loss, tokens, items, 64, False)
    large = loss_memory(loss, tokens, 10_000_000, 64, False)
    monkeypatch.setattr(config, "MAX_FORWARD_COUNTS", 0)
    uncounted = loss_memory(loss, tokens, items, 64, False)
    assert counted.saved - uncounted.saved == allocation(4 * (items + 1), 4)
    assert uncounted.backward_extra - counted.backward_extra == allocation(items + 1, 4)
    assert large == loss_memory(loss, tokens, 10_000_000, 64, False)


@pytest.mark.parametrize("mode, tokens, in_kernel, chunk_tokens, chunk_tiles", [
    ("shared", 131_072, False, 16_384, 1), ("tile", 131_072 + 5, False, 64 * 128, 64),
    ("tile", 1024, True, 1024, 8)])
def test_float32_rows_of_256_hold_cublas_chunks(mode, tokens, in_kernel, chunk_tokens,
                                                chunk_tiles, monkeypatch):
    """Float32 at d 256, shared and tile, N 2,048: the forward holds the largest chunk's
    products (128 MiB: 16,384 shared tokens, or 64 tiles of 128; all 1,024 tokens where
    fewer) and its negatives' rows, the backward their gradient rows too, and over a
    compact accumulator (1,024 tokens name fewer rows than 26,744) the indices of the rows
    they add into: what the same loss holds with the kernels' own products, besides."""
    from cce_tune.kernels import config as kernel_config

    n, dim, items = 2048, 256, 26_744
    config = LossConfig("cce_minus", num_negatives=n, negative_mode=mode, tile_size=128,
                        in_kernel_negatives=in_kernel)
    ours = loss_memory(config, tokens, items, dim, False)
    monkeypatch.setattr(kernel_config, "CUBLAS_MIN_ROW_BYTES", 2**30)
    kernels_own = loss_memory(config, tokens, items, dim, False)
    assert ours.saved == kernels_own.saved
    scores = allocation(chunk_tokens * n, 4)
    rows = allocation(chunk_tiles * n * dim, 4)
    index = 2 * allocation(chunk_tiles * n, 4) + allocation(chunk_tiles * n, 1)
    assert ours.forward_extra - kernels_own.forward_extra == scores + rows
    scratch = scores + 2 * rows
    if tokens == 1024:  # the compact accumulator's moment: owners, its rows, d(hidden)
        positions = tokens + 8 * n
        assert ours.backward_extra == (allocation(items + 1, 4) + allocation(positions * dim, 4)
                                       + allocation(tokens * dim, 4) + scratch + index)
    else:
        assert ours.backward_extra - kernels_own.backward_extra == scratch
    autocast = loss_memory(config, tokens, items, dim, True)  # bf16 rows: the kernels'
    monkeypatch.setattr(kernel_config, "CUBLAS_MIN_ROW_BYTES", 0)
    assert loss_memory(config, tokens, items, dim, True) == autocast


def test_the_cublas_grid_takes_cublas_products_and_sets_peaks_with_them(monkeypatch):
    """Every point of `verify-memory --grid cublas` takes the path, and at two of them the
    chunk's buffers raise the step's estimated peak (so the grid measures that term)."""
    from cce_tune.kernels import config as kernel_config
    from cce_tune.kernels.config import products_in_cublas, row_block
    from cce_tune.tuner.memory_grid import cublas_grid

    grid = cublas_grid()
    assert all(products_in_cublas(p.negative_mode, 4, row_block(p.hidden), p.tile_size)
               and not p.bf16 for p in grid)
    with_chunks = [estimate(p.config(), p.shape()).total for p in grid]
    monkeypatch.setattr(kernel_config, "CUBLAS_MIN_ROW_BYTES", 2**30)
    without = [estimate(p.config(), p.shape()).total for p in grid]
    assert sum(a > b for a, b in zip(with_chunks, without, strict=True)) >= 2


def test_reference_loss_holds_the_scores():
    """ce_minus keeps the (tokens, 1 + N) concatenation and the (tokens, N) mask."""
    tokens, items, dim, n = 1000, 50_000, 64, 512
    memory = loss_memory(LossConfig("ce_minus", num_negatives=n), tokens, items, dim, False)
    scores = allocation(tokens * (n + 1), 4) + allocation(tokens * n, 1)
    gathers = allocation(tokens * dim, 4) + allocation(n * dim, 4)
    assert memory.saved == scores + gathers + allocation(n, 8) + allocation(tokens, 4)
    full = loss_memory(LossConfig("ce"), tokens, items, dim, False)
    assert full.saved == allocation(tokens * items, 4) + allocation(tokens, 4)


def test_activations_by_hand_for_a_small_block():
    config = SASRecConfig(num_items=10, max_len=16, hidden=32, num_blocks=1, num_heads=1)
    b, e = 4, 4 * 16 * 32  # batch, elements of a (B, L, d) tensor
    e4, mask = allocation(e, 4), allocation(e, 1)
    stats = 2 * allocation(64, 4)
    bias = allocation(4 * 16 * 16, 4)
    lse = allocation(4 * 32, 4)
    embedding = mask + e4 + allocation(64, 1) + bias
    block = 2 * stats + 8 * e4 + lse + 3 * mask + 2 * e4
    final = stats + e4
    assert activation_memory(config, b, autocast=False).saved == embedding + block + final


@pytest.mark.parametrize("loss", ["ce", "ce_minus", "cce", "cce_minus", "bce", "gbce"])
@pytest.mark.parametrize("bf16", [False, True])
def test_estimate_grows_with_batch_negatives_and_length(loss, bf16):
    base = TrainConfig(loss=LossConfig(loss, num_negatives=1 if loss in ("ce", "bce") else 64),
                       batch_size=64, max_len=50, bf16=bf16)
    knobs = {"batch_size": [64, 128, 256, 1024], "max_len": [50, 100, 200, 400]}
    for knob, values in knobs.items():
        estimates = [estimate(replace(base, **{knob: v}), ML20M) for v in values]
        totals = [e.total for e in estimates]
        training = [e.phases["backward"] for e in estimates]
        assert totals == sorted(totals), knob  # evaluation may dominate, and not grow
        assert training == sorted(training) and training[0] < training[-1], knob
    if loss in ("ce_minus", "cce_minus", "gbce"):
        totals = [estimate(replace(base, loss=replace(base.loss, num_negatives=n)), ML20M).total
                  for n in (64, 512, 4096, 8192)]
        assert totals == sorted(totals)


def test_breakdown_terms_add_up():
    breakdown = estimate(TrainConfig(loss=LossConfig("ce_minus", num_negatives=4096),
                                     batch_size=512, max_len=200), ML20M)
    assert sum(breakdown.terms.values()) == breakdown.peak_allocated
    assert breakdown.phase == "backward"
    assert breakdown.peak_allocated == max(breakdown.phases.values())
    assert breakdown.peak_allocated < breakdown.peak_reserved < breakdown.total


def test_fused_loss_needs_far_less_than_the_reference():
    config = TrainConfig(loss=LossConfig("ce_minus", num_negatives=4096), batch_size=256,
                         max_len=200)
    reference = estimate(config, ML20M).phases["backward"]
    fused = estimate(replace(config, loss=LossConfig("cce_minus", num_negatives=4096)),
                     ML20M).phases["backward"]
    assert reference > 3 * fused


@pytest.mark.parametrize("knob", ["batch-size", "max-len", "negatives"])
def test_solve_finds_the_largest_value_that_fits(knob):
    config = TrainConfig(loss=LossConfig("ce_minus", num_negatives=1024), batch_size=256,
                         max_len=200)
    budget = 20e9
    value = solve(config, ML20M, budget, knob)
    assert estimate(with_knob(config, knob, value), ML20M).fits(budget)
    assert not estimate(with_knob(config, knob, value + 1), ML20M).fits(budget)
    assert with_knob(config, knob, 7) != config


def test_solve_says_when_nothing_fits():
    with pytest.raises(CceTuneError, match="even batch-size 1 needs"):
        solve(TrainConfig(loss=LossConfig("ce")), DatasetShape(1000, 10_000_000), 1e9,
              "batch-size")


def test_default_grid_covers_the_asked_ranges():
    grid = default_grid()
    assert len(grid) >= 40
    assert {p.loss for p in grid} == {"ce", "ce_minus", "cce", "cce_minus", "bce", "gbce"}
    assert {p.num_items for p in grid} == {26_744, 1_000_000}
    assert {p.hidden for p in grid} == {64, 128, 256}
    assert min(p.batch_size for p in grid) == 32 and max(p.batch_size for p in grid) == 2048
    assert min(p.max_len for p in grid) == 50 and max(p.max_len for p in grid) == 512
    sampled = [p.negatives for p in grid if p.loss.endswith("minus")]
    assert min(sampled) == 64 and max(sampled) == 8192


def test_the_per_position_grid_is_every_per_position_group_of_the_default_one():
    grid = per_position_grid()
    assert grid == [p for p in default_grid() if p.negative_mode == "per_position"]
    per_position = {(group, bf16) for group, bf16 in launchable_groups()
                    if "per_position" in group or group == "bce"}
    assert per_position <= {(point.group(), point.bf16) for point in grid}


def test_default_grid_measures_every_group_a_run_can_launch():
    """Each loss x negative layout x id source x precision that LossConfig admits is a
    branch of the memory model; the grid measures each (issue 20: per-position was never
    measured and was 26 % under)."""
    grid = default_grid()
    covered = {(point.group(), point.bf16) for point in grid}
    assert launchable_groups() <= covered
    for group, bf16 in launchable_groups():
        assert sum(p.group() == group and p.bf16 == bf16 for p in grid) >= 1
    groups = {group for group, _ in launchable_groups()}
    assert {"ce_minus per_position", "cce_minus tile in-kernel", "bce", "gbce tile"} <= groups
    assert "ce_minus per_position in-kernel" not in groups  # in-kernel ids are fused-only
    for config in (LossConfig("ce_minus", negative_mode="tile"),
                   LossConfig("cce_minus", negative_mode="per_position",
                              in_kernel_negatives=True)):
        point = next(p for p in grid if p.config().loss.negative_mode == config.negative_mode
                     and p.loss == config.name
                     and p.in_kernel == config.in_kernel_negatives)
        # The grids keep the tile size they were measured at, not the current default.
        assert point.config().loss == replace(config, num_negatives=point.negatives,
                                              tile_size=128)


def test_the_sparse_grid_measures_every_sparse_group_the_model_describes():
    grid = sparse_grid()
    assert {(point.group(), point.bf16) for point in grid} == sparse_groups()
    assert {point.num_items for point in grid} == {26_744, 500_000, 1_000_000, 2_000_000,
                                                   5_000_000, 10_000_000}
    for point in grid:
        check_described(point.config())  # none refused
    with pytest.raises(ValueError, match="describes sparse item gradients with the fused"):
        check_described(TrainConfig(loss=LossConfig("ce_minus", sparse_item_grad=True)))
    with pytest.raises(ValueError, match="in the shared and tile modes"):
        check_described(TrainConfig(loss=LossConfig("cce_minus", negative_mode="per_position",
                                                    sparse_item_grad=True)))
    sparse = TrainConfig(loss=LossConfig("cce_minus", sparse_item_grad=True))
    with pytest.raises(ValueError, match="over length or random batches"):
        check_described(replace(sparse, batches="packed"))


def test_a_sparse_item_gradient_holds_a_row_per_position_or_per_table_row():
    """kernels.compact: a row per position (targets and ids) where they are fewer than the
    table's rows, else the whole table; an int64 id per row."""
    shared = LossConfig("cce_minus", 4095, sparse_item_grad=True)
    tokens, dim = 131_072, 256
    assert sparse_item_gradient(shared, tokens, 10_000_000, dim) == (
        allocation((tokens + 4095) * dim, 4) + allocation(tokens + 4095, 8))
    tiles = replace(shared, negative_mode="tile", tile_size=128)  # 4.2 M ids
    assert sparse_item_gradient(tiles, tokens, 1_000_000, dim) == (
        allocation(1_000_001 * dim, 4) + allocation(1_000_001, 8))


def test_a_sparse_step_trades_table_sized_gradients_for_sparse_adam_scratch():
    """At 10 M items and shared negatives the table-sized gradients (two at the backward's
    end) are gone; the optimizer step adds SparseAdam's scratch instead."""
    config = TrainConfig(loss=LossConfig("cce_minus", 4095, sparse_item_grad=True),
                         batch_size=1024, max_len=128, hidden=256, bf16=True)
    dense = replace(config, loss=replace(config.loss, sparse_item_grad=False))
    shape = DatasetShape(num_users=4096, num_items=10_000_000)
    sparse_step, dense_step = estimate(config, shape), estimate(dense, shape)
    table = allocation(10_000_001 * 256, 4)
    assert dense_step.phases["backward"] - sparse_step.phases["backward"] > 1.5 * table
    assert sparse_step.phases["optimizer step"] < dense_step.phases["optimizer step"]
    # Tile negatives name every row of 1 M: the sum's rows make the optimizer step the peak.
    tiles = replace(config, loss=replace(config.loss, negative_mode="tile", tile_size=128))
    step = estimate(tiles, replace(shape, num_items=1_000_000))
    assert step.phase == "optimizer step" and step.terms["SparseAdam scratch"] > 0


def test_calibration_fits_scaled_measurements():
    """Measurements 20 % above the activation terms: the fit moves that scale, not the other."""
    points = [p for p in default_grid() if p.loss == "cce_minus" and p.num_items == 26_744]
    truth = MemoryProfile(activation_scale=1.2)
    rows = []
    for point in points:
        measured = estimate(point.config(), point.shape(), truth).peak_allocated
        rows.append({**point.__dict__, "status": "measured", "measured_allocated": measured,
                     "estimate_allocated": estimate(point.config(), point.shape()).peak_allocated,
                     "measured_reserved": measured, "context": 1 << 30})
    assert min(errors(rows)) < -0.05  # the default under-estimates these made-up points
    fitted = calibrate(rows, "test GPU", "0")
    assert max(abs(e) for e in errors(rows, fitted)) < 0.02
    assert fitted.activation_scale == pytest.approx(1.2, abs=0.03)


def test_profile_round_trips(tmp_path):
    profile = MemoryProfile(activation_scale=1.1, gpu="H100", torch="2.11", points=3)
    profile.save(tmp_path / "p.json")
    assert MemoryProfile.load(tmp_path / "p.json") == profile
    (tmp_path / "bad.json").write_text(json.dumps({"scale": 2}))
    with pytest.raises(CceTuneError, match="not a profile written by verify-memory"):
        MemoryProfile.load(tmp_path / "bad.json")


def test_estimate_command_prints_a_table_and_json(capsys):
    argv = ["estimate", "--dataset", "ml-20m", "--model", "sasrec", "--loss", "cce_minus",
            "--batch-size", "256", "--negatives", "4096", "--max-len", "200"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "138,493 users, 26,744 items" in out and "= total on the GPU" in out
    assert main([*argv, "--json", "--gpu-mem", "40GB"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fits"] is True and result["budget"] == 40e9


def test_estimate_command_solves(capsys):
    argv = ["estimate", "--dataset", "ml-20m", "--loss", "ce_minus", "--negatives", "4096",
            "--max-len", "200", "--gpu-mem", "40GiB", "--solve", "batch-size", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["total"] <= 40 * 2**30 and result["solved"]["batch-size"] > 100
    # What a tuning run would launch (its default --margin) is smaller, and fits that share.
    tuned = result["solved_under_margin"]
    assert 100 < tuned["batch-size"] < result["solved"]["batch-size"]
    assert tuned["margin"] == TuneSettings.margin


@pytest.mark.parametrize("argv,message", [
    (["estimate", "--solve", "batch-size"], "--solve needs --gpu-mem"),
    (["estimate", "--loss", "cce_minus", "--sparse-item-grad", "--gpus", "2"],
     "data-parallel training (--gpus > 1) takes none of --sparse-item-grad (NCCL"),
    (["estimate", "--dataset", "missing.csv"], "missing.csv: no such file"),
    (["verify-memory"] if not torch.cuda.is_available() else ["estimate", "--dataset", "x"],
     "none is visible" if not torch.cuda.is_available() else "unknown dataset"),
])
def test_memory_commands_refuse_bad_input_in_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cce-tune: error: ") and message in err


def test_verify_memory_takes_a_model_or_a_grid_not_both(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["verify-memory", "--model", "bert4rec", "--grid", "tiny"])
    assert exit_.value.code == 2
    assert "--grid: not allowed with argument --model" in capsys.readouterr().err


def test_unprepared_file_dataset_is_named(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\n1,1,1\n")
    assert main(["estimate", "--dataset", str(log)]) == 2
    assert "is not prepared yet: run `cce-tune data" in capsys.readouterr().err


def test_prepared_file_dataset_counts_come_from_the_cache(tmp_path, capsys):
    log = tmp_path / "log.csv"
    rows = [f"{u},{i},{t}" for u, i, t in itertools.product(range(1, 4), range(1, 9), [0])]
    log.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    assert main(["data", "--dataset", str(log)]) == 0
    capsys.readouterr()
    assert main(["estimate", "--dataset", str(log), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["users"], result["items"]) == (3, 8)


def test_estimate_dlrm_prints_the_breakdown_and_a_table_wise_split(capsys):
    assert main(["estimate", "--model", "dlrm", "--batch-size", "1024"]) == 0
    out = capsys.readouterr().out
    assert "8 tables (8,000,000 rows) x 64" in out and "embedding tables" in out
    big = ["estimate", "--model", "dlrm", "--arch-embedding-size", "-".join(["10**8"] * 2)]
    assert main(big) == 2  # not a number: named
    assert "--arch-embedding-size" in capsys.readouterr().err
    argv = ["estimate", "--model", "dlrm", "--gpu-mem", "40GB", "--json",
            "--arch-embedding-size", "-".join(["100000000"] * 4)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fits"] is False and result["gpus_for_a_table_wise_split"] == 4


def test_a_data_parallel_gpu_holds_its_share_of_the_batch_and_gradient_buckets():
    config = TrainConfig(loss=LossConfig("ce"), batch_size=256, max_len=100, hidden=64)
    shape = DatasetShape(num_users=10_000, num_items=3_000)
    one, two = estimate(config, shape), estimate(config, shape, gpus=2)
    half = estimate(replace(config, batch_size=128), shape)
    assert two.terms["gradient buckets"] == one.terms["parameters"]
    assert "gradient buckets" not in one.terms
    # the step's phases are those of half the batch, plus the buckets
    for phase in ("forward", "backward"):
        assert two.phases[phase] == half.phases[phase] + two.terms["gradient buckets"]
    # an odd batch: the largest share
    odd = estimate(replace(config, batch_size=255), shape, gpus=2)
    assert odd.phases["backward"] == two.phases["backward"]
