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
    with pytest.raises(ValueError, match="data-parallel trials"):
        parallel.config({"bf16": True})
    auto = SASRecTarget(TrainConfig(batches="auto"), DatasetShape(100, 50), None, gpus=2)
    assert auto.config({"bf16": True}).batches == "length"  # auto never packs them
