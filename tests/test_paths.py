"""Atomic writes: all or nothing, and files as readable as any other the user writes."""

import os
import stat

import pytest

from kompete.paths import atomic_output, write_text_atomic


def test_atomic_output_keeps_old_file_when_block_fails(tmp_path):
    target = tmp_path / "images.zip"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["images.zip"]


def test_atomic_output_file_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a" / "config.yaml", "x: 1\n")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a" / "config.yaml").stat().st_mode)
    assert mode == 0o644
