import math

import pytest
import torch

from cce_tune.tuner.cli import main
from cce_tune.tuner.clicks.train import click_metrics


def test_click_metrics_by_hand_with_ties():
    logits = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.4])
    labels = torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0])
    metrics = click_metrics(logits, labels)
    assert metrics.auc == pytest.approx(4.5 / 6)  # pairs won, a tie counting half
    assert metrics.accuracy == pytest.approx(3 / 5)  # every logit > 0 predicts a click
    assert metrics.constant_log_loss == pytest.approx(-(0.6 * math.log(0.6)
                                                        + 0.4 * math.log(0.4)))


@pytest.mark.parametrize("optimizer", ["sgd", "rowwise_adagrad"])
def test_train_dlrm_beats_a_constant_predictor(optimizer, capsys):
    argv = ["train-dlrm", "--epochs", "2", "--arch-mlp-bot", "13-64-16",
            "--arch-sparse-feature-size", "16", "--arch-mlp-top", "64-1", "--batch-size", "512",
            "--sparse-optimizer", optimizer, "--device", "cpu"]
    if optimizer == "rowwise_adagrad":
        argv += ["--table-lr", "0.05"]
    assert main(argv) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1].split()
    auc, log_loss, constant = float(last[2]), float(last[3]), float(last[4])
    assert auc > 0.6 and log_loss < constant


def test_train_dlrm_refuses_a_bottom_mlp_of_the_wrong_width(capsys):
    assert main(["train-dlrm", "--arch-mlp-bot", "12-16", "--arch-sparse-feature-size",
                 "16", "--arch-mlp-top", "16-1"]) == 2
    assert "--arch-mlp-bot starts with 12 but synthetic-dlrm has 13" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.parametrize("dense_optimizer", ["adam", "sgd"])
def test_a_step_replayed_from_a_cuda_graph_trains_like_the_eager_one(dense_optimizer):
    from cce_tune.models.dlrm_config import DLRMConfig
    from cce_tune.tuner.clicks.batches import ClickGenerator, ClickSpec
    from cce_tune.tuner.clicks.config import DLRMTrainConfig
    from cce_tune.tuner.clicks.train import train_dlrm

    spec = ClickSpec((500, 80, 7), lookups=3, samples=64 * 9 + 20)  # a ragged last batch,
    generator = ClickGenerator(spec, planted=True, seed=0, device="cuda")
    batches = list(generator.batches(64))
    valid = list(generator.batches(64, 256))
    model = DLRMConfig(spec.table_sizes, bottom=(13, 32, 16), top=(16, 1), embedding_dim=16)
    results = {}
    for graphed in (False, True):
        config = DLRMTrainConfig(model, batch_size=64, dense_optimizer=dense_optimizer,
                                 epochs=5, device="cuda", cuda_graph=graphed)  # captured too
        results[graphed] = train_dlrm(config, lambda: iter(batches), valid)
    for eager, replayed in zip(results[False], results[True], strict=True):
        assert replayed.loss == pytest.approx(eager.loss, rel=1e-4)
        assert replayed.valid.auc == pytest.approx(eager.valid.auc, abs=1e-3)
