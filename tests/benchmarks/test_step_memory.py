from pathlib import Path

from benchmarks.step_memory import ROOT, origin


def test_origins_resolve_links_to_our_code(tmp_path: Path):
    """On the device machine the packages are links in a namespace folder (run_gpu.sh's
    cce_namespace): a frame there names our file; frames of other code do not."""
    (tmp_path / "cce_tune").mkdir()
    (tmp_path / "cce_tune" / "kernels").symlink_to(ROOT / "kernels")
    frames = [{"filename": "/usr/lib/python3/site-packages/torch/x.py", "line": 1,
               "name": "theirs"},
              {"filename": str(tmp_path / "cce_tune" / "kernels" / "fused.py"), "line": 7,
               "name": "forward"}]
    assert origin(frames) == "kernels/fused.py:7 forward"
    assert origin(frames[:1]) == "?"
