"""What a run draws is readable: loss plots with markers (one or two logged rows are points, not empty axes),
'N points' when there are few, the run and competition in the title; sample grids with the class under each
conditional image and input/output under each translation pair."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from kompete.algorithms.base import build_task, load_data
from kompete.config import load_config
from kompete.train.budget import make_budget
from kompete.runtime.context import make_context
from kompete.train.monitor import MetricsLog, plot_metrics, save_grid
from kompete.train.run import train_run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def drawn(monkeypatch):
    """Every matplotlib figure saved, kept for inspection (the PNG is still written)."""
    figures = []
    real = Figure.savefig

    def keep(fig, *args, **kwargs):
        figures.append(fig)
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


@pytest.mark.parametrize("rows", [0, 1, 2])
def test_loss_plots_of_one_or_two_rows_show_points_and_say_how_many(tmp_path, drawn, rows):
    log = MetricsLog(tmp_path / "metrics.csv", ["step", "d", "g", "d_real", "d_fake"])
    for step in range(rows):
        log.write({"step": 10 * (step + 1), "d": 1.0, "g": 0.5 + step, "d_real": 2.0, "d_fake": -1.0})
    log.close()
    written = plot_metrics(tmp_path / "metrics.csv", tmp_path, ["d", "g", "d_real", "d_fake"],
                           title="run r1, sample-dogs")
    assert [p.name for p in written] == ["losses.png", "d_outputs.png"] and len(drawn) == 2
    for fig in drawn:
        (ax,) = fig.axes
        assert all(line.get_marker() == "o" for line in ax.lines) and len(ax.lines) == (2 if rows else 0)
        assert rows or [t.get_text() for t in ax.texts] == ["no row logged: training stopped before its first step "
                                                            "ended"]
        assert "run r1, sample-dogs" in ax.get_title()
        assert f"({rows} point{'' if rows == 1 else 's'}, one per train.log_every steps)" in ax.get_title()


def test_a_runs_plots_are_titled_with_the_run_and_the_competition(tmp_path, drawn):
    cfg = load_config("sample-digits", ["data.sample.n_images=20", "train.g_channels=4", "train.d_channels=4",
                                        "train.batch_size=8", "train.log_every=1"])
    train_run(cfg, tmp_path / "my-run", make_budget(cfg, 600.0), fresh=True, max_steps=2, progress=False)
    titles = [fig.axes[0].get_title() for fig in drawn]
    assert len(titles) == 2 and all("run my-run, sample-digits" in t for t in titles)


def test_captions_are_written_under_the_tiles(tmp_path):
    images = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    plain = np.asarray(Image.open(save_grid(images, tmp_path / "plain.png", nrow=2)))
    captioned = np.asarray(Image.open(save_grid(images, tmp_path / "c.png", nrow=2, captions=["7", "7", "1", "x"])))
    assert plain.max() == 0  # black tiles, black padding, no text
    tile = 64  # 16 px tiles enlarged so a caption fits
    assert captioned.shape[:2] == (2 * (tile + 12 + 2) + 2, 2 * (tile + 2) + 2)
    strips = [captioned[2 + r * (tile + 14) + tile:2 + r * (tile + 14) + tile + 12, 2 + c * (tile + 2):][:, :tile]
              for r in (0, 1) for c in (0, 1)]
    assert all(s.max() > 200 for s in strips)  # light text in every strip
    assert np.array_equal(strips[0], strips[1]) and not np.array_equal(strips[0], strips[2])


def test_a_conditional_grid_names_each_images_class(tmp_path):
    cfg = load_config("sample-digits", ["data.sample.n_images=20", "train.g_channels=4", "train.d_channels=4"])
    task = build_task(cfg, make_context(cfg, "cpu"), load_data(cfg, progress=False))
    captions = task.grid_captions()
    assert len(captions) == len(task.sample_grid()) and captions[:11] == [str(d) for d in range(10)] + ["0"]
    unconditional = load_config("sample-digits", ["data.sample.n_images=20", "train.model=vanilla",
                                                  "output.layout=flat", "train.g_channels=4", "train.d_channels=4"])
    assert build_task(unconditional, make_context(unconditional, "cpu"),
                      load_data(unconditional, progress=False)).grid_captions() is None


def test_a_translation_grid_says_which_tile_is_the_input():
    cfg = load_config("sample-monet", ["train.model=cyclegan", "data.image_size=32", "data.load_size=36",
                                       "data.sample.n_images=8", "data.sample.n_target=4", "data.sample.image_size=32",
                                       "train.g_channels=4", "train.d_channels=4", "cyclegan.n_blocks=1",
                                       "cyclegan.grid_photos=2"])
    task = build_task(cfg, make_context(cfg, "cpu"), load_data(cfg, progress=False))
    assert task.grid_captions() == ["input", "output", "input", "output"] and len(task.sample_grid()) == 4


def test_ledger_plots_mark_single_snapshots_and_name_the_competition(tmp_path, drawn):
    from kompete.ledger.plot import plot_campaign, plot_history
    from kompete.ledger.store import Ledger, LeaderboardRow

    with Ledger(tmp_path / "l.db") as ledger:
        ledger.record_snapshot("gan-getting-started", [LeaderboardRow(1, 1, "me", 40.0, None)], my_team="me",
                               taken_at="2026-10-31T00:00:00Z")
        plot_history(ledger, "gan-getting-started", tmp_path / "h.png")
    plot_campaign("c1", [], {"v1": {"eval_mifid": [(10.0, 50.0)]}}, tmp_path / "c.png", competition="sample-dogs")
    history, campaign = drawn
    lines = [line for ax in history.axes for line in ax.lines if len(line.get_xdata()) == 1]
    assert lines and all(line.get_marker() == "o" for line in lines)  # one snapshot: points, not nothing
    assert campaign._suptitle.get_text().startswith("campaign c1 on sample-dogs")
    assert all(line.get_marker() == "o" for line in campaign.axes[1].lines)
