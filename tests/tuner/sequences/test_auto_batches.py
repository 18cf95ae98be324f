"""`--batches auto`: packed batches replayed from CUDA graphs where the memory model
describes them, and a tuning run that refuses the steps it does not."""

import pytest

from cce_tune.kernels import LossConfig
from cce_tune.tuner.families.sasrec import SASRecTarget
from cce_tune.tuner.memory import DatasetShape
from cce_tune.tuner.sequences import config as config_module
from cce_tune.tuner.sequences.config import (
    ClozeConfig,
    TrainConfig,
    data_parallel_refusal,
    resolve_auto,
    variable_length_attention,
)


@pytest.mark.skipif(not variable_length_attention(), reason="needs torch >= 2.10")
def test_auto_packs_and_graphs_sasrec_in_bf16_only(monkeypatch):
    auto = TrainConfig(batches="auto", bf16=True)
    fast = resolve_auto(auto)
    assert (fast.batches, fast.cuda_graphs) == ("packed", True)
    monkeypatch.setattr(config_module, "variable_length_attention", lambda: False)
    assert resolve_auto(auto).batches == "length"  # an older torch: no fast packed step
    for slower in (resolve_auto(TrainConfig(batches="auto")),
                   resolve_auto(auto, data_parallel=True),
                   resolve_auto(TrainConfig(batches="auto", bf16=True, loss=LossConfig(
                       "cce_minus", sparse_item_grad=True))),
                   resolve_auto(ClozeConfig(batches="auto", bf16=True))):
        assert (slower.batches, slower.cuda_graphs) == ("length", False)
    assert resolve_auto(TrainConfig(batches="random", bf16=True)).batches == "random"


@pytest.mark.skipif(not variable_length_attention(), reason="needs torch >= 2.10")
def test_a_tuning_run_refuses_steps_the_memory_model_does_not_describe():
    target = SASRecTarget(TrainConfig(batches="packed"), DatasetShape(100, 50), None)
    with pytest.raises(ValueError, match="--batches packed needs bf16"):
        target.config({"bf16": False})
    assert target.config({"bf16": True}).batches == "packed"
    graphed = SASRecTarget(TrainConfig(batches="length", cuda_graphs=True), DatasetShape(100, 50),
                           None)
    with pytest.raises(ValueError, match="replays packed bf16 steps only"):
        graphed.config({"bf16": True})
    parallel = SASRecTarget(TrainConfig(batches="packed"), DatasetShape(100, 50), None, gpus=2)
    with pytest.raises(ValueError, match=r"\(--gpus-per-trial > 1\) takes none of --batches"):
        parallel.config({"bf16": True})
    auto = SASRecTarget(TrainConfig(batches="auto"), DatasetShape(100, 50), None, gpus=2)
    assert auto.config({"bf16": True}).batches == "length"  # auto never packs them


def test_data_parallel_training_names_what_it_cannot_reduce_pack_or_graph():
    assert data_parallel_refusal(TrainConfig(batches="length"), "--gpus > 1") is None
    sparse = TrainConfig(batches="length", loss=LossConfig("cce_minus", sparse_item_grad=True))
    assert data_parallel_refusal(sparse, "torchrun") == (
        "data-parallel training (torchrun) takes none of --sparse-item-grad (NCCL reduces no "
        "sparse gradient): leave it out (--batches auto neither packs nor graphs there)")
    both = TrainConfig(batches="packed", cuda_graphs=True)
    refusal = data_parallel_refusal(both, "--gpus > 1")
    assert "--batches packed (a rank's" in refusal and "--cuda-graphs (graphs" in refusal
    assert "leave them out" in refusal
