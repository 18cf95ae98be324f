import argparse
import json

import pytest

from cce_tune.tuner.cli import build_parser, main
from cce_tune.tuner.families import names


def test_train_writes_json(tmp_path, capsys):
    out = tmp_path / "run.json"
    code = main(["train", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "512",
                 "--max-len", "10", "--hidden", "16", "--loss", "gbce", "--negatives", "8",
                 "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "synthetic: 2,000 users, 500 items, 60,000 interactions" in printed
    assert "val NDCG@10" in printed and "popularity  NDCG@10" in printed
    result = json.loads(out.read_text())
    assert result["config"]["loss"]["name"] == "gbce"
    assert len(result["epochs"]) == 1


def test_data_prints_summary(capsys):
    assert main(["data", "--dataset", "synthetic"]) == 0
    assert capsys.readouterr().out.startswith("synthetic: 2,000 users")


@pytest.mark.parametrize("argv,message", [
    (["train", "--dataset", "ml-2m"], "unknown dataset 'ml-2m'"),
    (["train", "--loss", "bce", "--negatives", "4"], "bce takes exactly one negative"),
    (["train", "--hidden", "30", "--heads", "4"], "hidden size 30 is not divisible by 4 heads"),
    (["train", "--dataset", "ml-1m", "--data-dir", "/nonexistent"], "no ratings.dat in"),
    (["train", "--cuda-graphs", "--device", "cpu"], "--cuda-graphs needs a CUDA GPU"),
    (["train", "--bf16", "--device", "cpu"], "--bf16 needs a CUDA GPU"),  # not auto's graphs
    (["train", "--model", "bert4rec", "--cuda-graphs"], "BERT4Rec's step has not been replayed"),
    (["estimate", "--sparse-item-grad"],
     "--sparse-item-grad with --loss ce_minus: the memory model describes sparse item "
     "gradients with the fused loss only"),
    (["train", "--loss", "gbce", "--sparse-item-grad"],
     "sparse item gradients need loss ce_minus or cce_minus, not gbce"),
    (["train", "--model", "bert4rec", "--sparse-item-grad"], "not for BERT4Rec yet"),
])
def test_bad_input_is_one_clear_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cce-tune: error: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv,message", [
    (["train", "--negatives", "many"], "'many' is not a whole number"),
    (["train", "--batch-size", "0"], "0 must be at least 1"),
    (["train", "--dropout", "1.5"], "1.5 must be in [0, 1)"),
    (["train", "--loss", "softmax"], "invalid choice: 'softmax'"),
    (["tune", "--time-budget", "2hours"], "'2hours' is not a duration; write e.g. 600, 90s"),
    (["tune", "--time-budget", "0m"], "'0m' must be longer than 0"),
])
def test_bad_arguments_name_value_and_valid_range(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("text,size", [
    ("40GB", 40 * 10**9), ("40GiB", 40 * 2**30), ("40 gib", 40 * 2**30), ("4e10", 4 * 10**10),
    ("512MiB", 512 * 2**20), ("1.5TB", 1.5 * 10**12),
])
def test_memory_sizes_parse(text, size):
    from cce_tune.tuner.arguments import memory_size

    assert memory_size(text) == size


@pytest.mark.parametrize("text", ["40 parsecs", "GB", "-4GB", "40G", ""])
def test_bad_memory_sizes_name_the_value_and_the_units(text):
    import argparse

    from cce_tune.tuner.arguments import memory_size

    with pytest.raises(argparse.ArgumentTypeError, match="is not a memory size.*GiB"):
        memory_size(text)


@pytest.mark.parametrize("argv", [
    ["--gpu-mem", "40 parsecs", "--dataset", "synthetic"],
    ["estimate", "--loss", "nope"],
    ["train", "--model", "dlrm", "--arch-interaction-op", "sum"],
])
def test_a_bad_argument_is_one_line_naming_it(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error: argument" in err[0] and "--help" in err[0], err


def test_a_tile_size_the_kernels_refuse_is_one_line_before_any_work(capsys):
    assert main(["estimate", "--loss", "cce_minus", "--negative-mode", "tile",
                 "--tile-size", "8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["cce-tune: error: tile size 8 does not suit cce_minus's kernels: give a "
                   "power of two of at least 16 (16, 32, 64, ...)"], err


def test_a_budget_without_a_unit_is_refused_with_the_fix(capsys):
    with pytest.raises(SystemExit):
        main(["--gpu-mem", "40", "--dataset", "synthetic"])
    assert "'40' has no unit, so it means 40 bytes; write e.g. 40GB or 40GiB" in (
        capsys.readouterr().err)


def test_a_budget_beyond_the_gpu_is_refused(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda index: type("Props", (), {"total_memory": 80 * 10**9}))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "NVIDIA H100")
    assert main(["--gpu-mem", "40TB", "--dataset", "synthetic", "--no-dashboard"]) == 2
    assert ("--gpu-mem 40.00 TB is more than this machine's GPU has (80.00 GB on NVIDIA "
            "H100)") in capsys.readouterr().err


def test_estimate_states_its_caps_and_the_solvers_limit(capsys):
    shape = ["--num-users", "1000", "--num-items", "500"]
    assert main(["estimate", *shape, "--batch-size", "1000000000000"]) == 0
    assert "the batch is capped at the dataset's 1,000 users" in capsys.readouterr().out
    assert main(["estimate", *shape, "--gpu-mem", "40GB", "--solve", "batch-size"]) == 0
    assert "(the largest value tried) still fits" in capsys.readouterr().out
    assert main(["estimate", *shape, "--batches", "packed"]) == 0
    assert "packed batches in float32: attention runs on a padded layout" in (
        capsys.readouterr().out)
    assert main(["estimate", *shape, "--bf16"]) == 0  # auto: packed, graphed, full windows
    assert ("packed batches of at most 6,401 tokens (the users' full windows: the dataset's "
            "lengths are not read") in capsys.readouterr().out
    assert main(["estimate", "--dataset", "synthetic", "--bf16"]) == 0
    assert "synthetic is not prepared yet; `cce-tune data --dataset synthetic`" in (
        capsys.readouterr().out)  # an estimate prepares nothing
    assert main(["data", "--dataset", "synthetic"]) == 0
    assert main(["estimate", "--dataset", "synthetic", "--bf16"]) == 0  # its lengths read
    out = capsys.readouterr().out
    assert "packed batches of at most" in out and "steps replayed from CUDA graphs" in out
    tokens = int(out.split("packed batches of at most ")[1].split(" tokens")[0].replace(",", ""))
    assert tokens < 128 * 50
    assert main(["estimate", "--dataset", "synthetic", "--bf16", "--num-users", "999"]) == 0
    out = capsys.readouterr().out  # one count by hand: kept, the lengths still read
    assert "999 users" in out and "(the full windows hold" in out


@pytest.mark.parametrize("model", names())
def test_every_flag_of_every_command_says_what_it_does(model):
    parser = build_parser(model)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        silent = [a.option_strings[0] if a.option_strings else a.dest for a in command._actions
                  if not a.help and not isinstance(a, argparse._HelpAction)]
        assert not silent, f"{model} {name}: {silent}"


def test_another_models_flag_names_the_model_that_has_it(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--mask-prob", "0.3"])
    assert "--mask-prob is a flag of --model bert4rec" in capsys.readouterr().err


def test_another_commands_flag_names_the_commands_that_have_it(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--gpu-mem", "40GB"])
    assert ("--gpu-mem is a flag of `estimate`, `tune` and `replay`, not of `train`"
            in capsys.readouterr().err)
