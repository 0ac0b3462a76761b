"""The guest itself: LIO is there, configfs is mounted and empty."""

from pathlib import Path


def test_lio_is_loaded_and_empty():
    root = Path("/sys/kernel/config/target")
    assert (root / "version").read_text().startswith("Target Engine Core")
    assert (Path("/sys/module/iscsi_target_mod")).is_dir()
    assert not [p for p in (root / "core").iterdir() if p.name != "alua"]
