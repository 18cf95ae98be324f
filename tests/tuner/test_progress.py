from types import SimpleNamespace

from rich.console import Console

from cce_tune.tuner.families import get
from cce_tune.tuner.progress import ProgressTable
from tests.tuner.run_dirs import fake_sasrec_run

RESULT = {"epoch": 2, "ndcg10": 0.4321, "epoch_seconds": 3.25, "peak_memory_gb": 1.5,
          "memory_measured": True, "estimate_gb": 1.6}


def trial(trial_id, **config):
    return SimpleNamespace(trial_id=trial_id, config={"estimate_total_bytes": 4e9,
                                                      "estimate_bytes": 2e9, **config})


def events(progress):
    a = trial("a", batch_size=512, negatives=4096, max_len=50, hidden=64, lr=1e-3, loss="cce_minus")
    b = trial("b", batch_size=128, negatives=256, max_len=200, hidden=128, lr=2e-3,
              loss="cce_minus")
    progress.on_trial_start(0, [], a)
    progress.on_trial_start(0, [], b)
    progress.on_trial_result(0, [], a, RESULT)
    progress.on_trial_complete(0, [], a)
    progress.on_trial_error(0, [], b)


def test_without_a_terminal_each_event_is_a_line(capsys):
    events(ProgressTable(2, 40 * 10**9, get("sasrec"), 2, live=False))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[  1/2] start  loss=cce_minus  B=512  N=4096  L=50  d=64  "
                               "lr=0.001")
    assert "NDCG@10 0.4321  3.2 s  peak allocated 1.50 GB (estimate 1.60 GB)" in (
        lines[2])
    assert "estimate 4.00 GB of the 40.00 GB budget (with CUDA context" in lines[0]
    assert lines[3] == "[  1/2] completed at epoch 2 (1 ended)"
    assert lines[4].startswith("[  2/2] FAILED (2 ended; the run goes on)")


def test_a_trial_out_of_memory_says_so_in_the_live_view(tmp_path, capsys):
    """Ray has written the error in the driver's staging folder when the callback runs."""
    (tmp_path / "error.txt").write_text("torch.OutOfMemoryError: CUDA out of memory.")
    progress = ProgressTable(1, 40 * 10**9, get("sasrec"), 2, live=False)
    oom = SimpleNamespace(**vars(trial("c", batch_size=64)),
                          error_file=str(tmp_path / "error.txt"))
    progress.on_trial_start(0, [], oom)
    progress.on_trial_error(0, [], oom)
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        "[  1/1] OUT OF MEMORY (1 ended; the run goes on)")


def test_the_live_table_holds_every_trial_and_the_best_score():
    progress = ProgressTable(2, 40 * 10**9, get("sasrec"), 2, live=False)
    events(progress)
    console = Console(width=200, record=True)
    console.print(progress.render())
    text = console.export_text()
    assert "2/2 trials ended, best NDCG@10 0.4321" in text
    assert "completed" in text and "failed" in text and "4096" in text and "0.4321" in text
    assert "1.50/2.00" in text and "-/2.00" in text  # measured/estimated; b never reported


def test_knobs_the_space_holds_fixed_get_no_column(capsys):
    events(ProgressTable(2, 40 * 10**9, get("sasrec"), 2, searched=("batch_size", "negatives"),
                         live=False))
    assert capsys.readouterr().out.splitlines()[0].startswith("[  1/2] start  B=512  N=4096  "
                                                              "estimate")


def test_a_searched_knob_beyond_the_familys_columns_gets_one(capsys):
    progress = ProgressTable(1, 40 * 10**9, get("sasrec"), 2,
                             searched=("batch_size", "sparse_item_grad"), live=False)
    progress.on_trial_start(0, [], trial("a", batch_size=512, sparse_item_grad=True))
    assert capsys.readouterr().out.startswith("[  1/1] start  B=512  sparse-item-grad=True  "
                                              "estimate")


def test_a_dlrm_run_shows_its_own_knobs_and_auc():
    progress = ProgressTable(1, 10**9, get("dlrm"), 2, live=False)
    one = trial("a", batch_size=1024, embedding_dim=16, mlp_bot="64", mlp_top="256-64")
    progress.on_trial_start(0, [], one)
    progress.on_trial_result(0, [], one, {**RESULT, "auc": 0.71})
    console = Console(width=200, record=True)
    console.print(progress.render())
    text = console.export_text()
    assert "AUC" in text and "256-64" in text and "0.7100" in text


def test_a_trial_ended_before_the_cap_is_stopped_early(capsys):
    progress = ProgressTable(1, 40 * 10**9, get("sasrec"), 5, live=False)
    a = trial("a", batch_size=512)
    progress.on_trial_start(0, [], a)
    progress.on_trial_result(0, [], a, RESULT)  # epoch 2 of at most 5
    progress.on_trial_complete(0, [], a)
    assert capsys.readouterr().out.splitlines()[-1] == "[  1/1] stopped early at epoch 2 (1 ended)"


def test_a_resumed_run_numbers_on_from_its_earlier_trials(tmp_path, capsys):
    """Ray restores the callback as pickled before any trial ran: the run's folder says
    which trials there were and which ended."""
    run_dir = fake_sasrec_run(tmp_path)
    cut = run_dir / "trial_00002" / "result.json"
    cut.write_text(cut.read_text().splitlines()[0] + "\n")  # interrupted after epoch 1
    progress = ProgressTable(5, 40 * 10**9, get("sasrec"), 2, live=False, run_dir=run_dir)
    progress.setup()
    again, new = trial("00002", batch_size=256), trial("e0f1", batch_size=64)
    progress.on_trial_start(0, [], again)
    progress.on_trial_start(0, [], new)
    progress.on_trial_result(0, [], new, RESULT)
    progress.on_trial_complete(0, [], new)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[  3/5] start") and lines[1].startswith("[  4/5] start")
    assert lines[-1] == "[  4/5] completed at epoch 2 (3 ended)"
