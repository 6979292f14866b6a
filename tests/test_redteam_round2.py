"""Issue 26 (red team, round 2): each test pins one finding that main got wrong.

Data losses (a resume training into another run's folder, a zip written over a checkpoint), a path traversal
through campaign and variant names, tracebacks (a non-UTF-8 metrics.csv, a full disk, damaged campaign rows),
validation gaps (class folders, symlink loops, shadowed competitions, cwd-relative paths) and doc drift.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kompete.archive import ZipImageWriter, encode_image
from kompete.cli import main
from kompete.errors import ArchiveError, ConfigError, TrainingError
from tests.conftest import REPO, run_kompete
from tests.fake_kaggle import zip_bytes

TINY = ["data.image_size=16", "train.g_channels=8", "train.d_channels=8", "gan.z_dim=16", "train.batch_size=16",
        "train.log_every=1", "output.n_min=1", "generate.n_images=25", "generate.batch_size=16",
        "data.sample.n_images=16"]
SETS = [a for s in TINY for a in ("--set", s)]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SMALL = ["--set", "output.n_min=4", "--set", "output.n_max=4", "--set", "generate.n_images=4"]


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def images_zip(names: list[str], size: int = 64) -> bytes:
    rng = np.random.default_rng(0)
    return zip_bytes({n: encode_image(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for n in names})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run of two steps, trained by the real CLI."""
    root = tmp_path_factory.mktemp("trained")
    env = {**ONE_THREAD, "KOMPETE_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "kompete-cache"),
           "KOMPETE_DB": str(root / "ledger.db")}
    proc = run_kompete("train", "sample-dogs", "--out", str(root / "run"), "--max-steps", "2", "--time-budget",
                       "10m", "--quiet", "--no-record", *SETS, env=env, cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root / "run", env


# --------------------------------------------------------------------------- 1, 2: data losses


@pytest.mark.slow
def test_1_a_resume_without_out_trains_in_the_resumed_folder(trained, tmp_path):
    run, env = trained
    mine = tmp_path / "mine"
    shutil.copytree(run, mine)
    other = tmp_path / "runs" / "sample-dogs"  # another run, where main trained the resume into
    other.mkdir(parents=True)
    (other / "metrics.csv").write_text("step\n1\n")
    proc = run_kompete("train", "sample-dogs", "--resume", str(mine), "--max-steps", "3", "--time-budget", "10m",
                       "--quiet", "--no-record", *SETS, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(other.iterdir()) == [other / "metrics.csv"] and (other / "metrics.csv").read_text() == "step\n1\n"
    assert (mine / "checkpoints" / "step-00000003.pt").is_file()


def test_1_a_lone_checkpoint_file_names_no_run_folder(tmp_path):
    from kompete.train.state import resume_run_folder

    (tmp_path / "x.pt").write_bytes(b"PK\x03\x04")
    with pytest.raises(TrainingError) as err:
        resume_run_folder(tmp_path / "x.pt")
    assert "--out" in err.value.render()
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "step-00000004.pt").write_bytes(b"x")
    assert resume_run_folder(tmp_path / "run") == tmp_path / "run"


@pytest.mark.slow
def test_2_generate_never_writes_its_zip_over_a_checkpoint(trained, tmp_path):
    run, env = trained
    ckpt = sorted((run / "checkpoints").glob("step-*.pt"))[-1]
    before = ckpt.read_bytes()
    proc = run_kompete("generate", str(ckpt), "--out", str(ckpt), "--quiet", env=env, cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert "refusing to replace" in proc.stderr and ckpt.read_bytes() == before


def test_2_only_an_image_zip_or_an_empty_file_is_replaced(tmp_path):
    image = np.zeros((8, 8, 3), np.uint8)
    (tmp_path / "notes.zip").write_bytes(zip_bytes({"notes.txt": b"keep me"}))
    (tmp_path / "config.yaml").write_text("name: x\n")
    for name in ("notes.zip", "config.yaml"):
        before = (tmp_path / name).read_bytes()
        with pytest.raises(ArchiveError, match="refusing to replace"):
            with ZipImageWriter(tmp_path / name) as zw:
                zw.add(image)
        assert (tmp_path / name).read_bytes() == before
    (tmp_path / "old.zip").write_bytes(images_zip(["0.png"], 8))
    (tmp_path / "empty.zip").write_bytes(b"")
    for name in ("old.zip", "empty.zip"):
        with ZipImageWriter(tmp_path / name) as zw:
            zw.add(image)
        assert zipfile.ZipFile(tmp_path / name).namelist() == ["00000.png"]


# --------------------------------------------------------------------------- 3, 10: names and slugs


def test_3_campaign_and_variant_names_cannot_leave_the_folder(fake_kaggle, tmp_path):
    outside = tmp_path / "elsewhere"
    added = invoke("campaign", "add", "trav", "alice/kompete-trav", "--variant", "../../../../elsewhere/x",
                   "--competition", "generative-dog-images")
    assert added.exit_code != 0 and "cannot name a folder" in added.output
    out = tmp_path / "camps"
    started = invoke("campaign", "start", "sample-dogs", "--name", "../../x", "--out", str(out), "--no-push", *SMALL)
    assert started.exit_code != 0 and "cannot name a folder" in started.output
    assert not outside.exists() and not (tmp_path / "x").exists() and not out.exists()


def test_3_a_recorded_variant_leading_outside_is_a_failed_row(fake_kaggle, tmp_path, monkeypatch):
    from kompete.kernel import campaign_results as results
    from kompete.kernel.client import KaggleClient
    from kompete.ledger import campaign_store as store
    from kompete.ledger.store import Ledger

    fake_kaggle.script_kernel("kompete-trav", ["COMPLETE"], files={"images.zip": images_zip(["0.png"])})
    monkeypatch.chdir(tmp_path)
    with Ledger() as ledger:  # a row from before names were checked
        store.create_campaign(ledger, "trav", "generative-dog-images", {"out": str(tmp_path / "c")}, [
            {"variant": "../../../evil", "kernel_ref": "alice/kompete-trav", "state": "complete", "version": 7}])
        (k,) = results.collect(ledger, KaggleClient(), "trav", "kernel")
    assert k["collected"] == "failed" and "outside" in k["collect_note"]
    assert not (tmp_path / "evil").exists() and not any(tmp_path.rglob("images.zip"))


@pytest.mark.parametrize("sweep", ["seed=1,1", "train.lr_g=1e-4,1E-4"])
def test_10_colliding_variants_are_refused_before_any_bundle(fake_kaggle, tmp_path, sweep):
    result = invoke("campaign", "start", "sample-dogs", "--name", "col", "--out", str(tmp_path / "c"),
                    "--sweep", sweep, "--no-push", *SMALL)
    assert result.exit_code != 0 and "same name or kernel slug" in result.output, result.output
    assert "--variant" not in result.output  # `start` has no such option
    assert not (tmp_path / "c").exists()


def test_10_a_build_failing_part_way_leaves_no_bundles(fake_kaggle, tmp_path, monkeypatch):
    from kompete.kernel import bundle, campaign

    real, calls = bundle.build_bundle, []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise bundle.BundleError("kernel script is 1.2 MB, over Kaggle's 1 MB limit")
        return real(*args, **kwargs)

    monkeypatch.setattr(campaign, "build_bundle", second_fails)
    result = invoke("campaign", "start", "sample-dogs", "--name", "half", "--out", str(tmp_path / "c"),
                    "--sweep", "seed=1,2", "--no-push", *SMALL)
    assert result.exit_code != 0 and "1 MB limit" in result.output
    assert not (tmp_path / "c" / "half" / "kernels").exists()


# --------------------------------------------------------------------------- 4, 11: collect and damaged rows


def test_4_a_non_utf8_metrics_csv_does_not_abort_collect(fake_kaggle, tmp_path):
    summary = json.dumps({"score": {"fid": 30.0, "mifid": 30.0, "memorization_distance": 0.3, "n_images": 4}})
    fake_kaggle.script_kernel("kompete-generative-dog-images-u8-base", ["COMPLETE"], files={
        "images.zip": images_zip([f"{i}.png" for i in range(4)]), "kompete-run.json": summary.encode(),
        "run/metrics.csv": b"step,images_per_s\n10,100\n20,\xff\xfe300\n30,inf\n"})
    assert invoke("campaign", "start", "generative-dog-images", "--name", "u8", "--out", str(tmp_path), *SMALL,
                  "--set", "output.image_size=64").exit_code == 0
    assert invoke("campaign", "status", "u8").exit_code == 0
    collected = invoke("campaign", "collect", "u8")
    assert collected.exit_code == 0, collected.output
    assert "base: ok" in collected.output
    assert invoke("campaign", "show", "u8").exit_code == 0


def _damage(statement: str, args: tuple = ()) -> None:
    with sqlite3.connect(os.environ["KOMPETE_DB"]) as conn:
        conn.execute(statement, args)


@pytest.mark.parametrize("damage", [
    "UPDATE campaigns SET spec_json = '{broken'",
    "UPDATE campaigns SET spec_json = '[1, 2]'",
    "UPDATE campaign_kernels SET sets_json = 'nope'",
    "UPDATE campaign_kernels SET changes_json = '[1]'",
    "UPDATE campaign_kernels SET queued_at = 'yesterday'",
    "UPDATE campaign_kernels SET state = 'banana'",
    "UPDATE campaign_kernels SET version = 'seven'",
    "DROP TABLE campaign_kernels",
])
def test_11_a_damaged_campaign_row_is_one_error_line_everywhere(fake_kaggle, tmp_path, damage):
    start = ["campaign", "start", "sample-dogs", "--name", "dmg", "--out", str(tmp_path), "--no-push", *SMALL]
    assert invoke(*start).exit_code == 0
    _damage(damage)
    for args in (start, ["campaign", "status", "dmg"], ["campaign", "collect", "dmg"],
                 ["campaign", "continue", "dmg", "base"], ["campaign", "show", "dmg"]):
        result = invoke(*args)
        assert result.exit_code != 0, (args, result.output)
        assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1, result.output


# --------------------------------------------------------------------------- 6, 15: writes that fail


def test_6_a_full_disk_keeps_the_previous_checkpoint_and_says_one_line(tmp_path, monkeypatch):
    import contextlib

    from kompete.train import state

    first = state.save_checkpoint(tmp_path, 1, {"w": np.zeros(4).tolist()})
    before = first.read_bytes()

    @contextlib.contextmanager
    def onto_a_full_disk(path):
        yield Path("/dev/full")  # every write fails with ENOSPC, as on a full disk

    monkeypatch.setattr(state, "atomic_output", onto_a_full_disk)
    with pytest.raises(TrainingError) as err:
        state.save_checkpoint(tmp_path, 2, {"w": list(range(100_000))})
    assert "cannot write checkpoint" in err.value.message and "\n" not in err.value.render()
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert state.list_checkpoints(tmp_path) == [first] and first.read_bytes() == before


def test_6_a_full_disk_under_a_zip_is_one_error_naming_the_zip(tmp_path, monkeypatch):
    import contextlib

    from kompete import archive

    @contextlib.contextmanager
    def onto_a_full_disk(path):
        yield Path("/dev/full")

    monkeypatch.setattr(archive, "atomic_output", onto_a_full_disk)
    with pytest.raises(ArchiveError) as err:
        with ZipImageWriter(tmp_path / "images.zip") as zw:
            for _ in range(64):
                zw.add(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert f"cannot write {tmp_path / 'images.zip'}" in err.value.message


def test_6_a_write_error_without_a_file_name_names_the_target(tmp_path):
    import errno

    from kompete import paths

    with pytest.raises(OSError) as err:
        with paths.atomic_output(tmp_path / "x.yaml"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.filename == str(tmp_path / "x.yaml") and list(tmp_path.iterdir()) == []


def test_6_resume_keeps_metrics_bytes_that_are_not_utf8(tmp_path):
    from kompete.train.rundir import truncate_metrics

    path = tmp_path / "metrics.csv"
    path.write_bytes(b"step,note\r\n1,caf\xe9\r\n2,x\r\ninf,y\r\n5,z\r\n")
    assert truncate_metrics(path, 2) == 2
    assert path.read_bytes() == b"step,note\r\n1,caf\xe9\r\n2,x\r\n"


def test_15_a_read_only_error_names_the_target_not_the_temporary_file(tmp_path, monkeypatch):
    import tempfile

    from kompete import paths

    def refused(dir, prefix, suffix):
        raise PermissionError(13, "Permission denied", os.path.join(dir, prefix + "xyz" + suffix))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(PermissionError) as err:
        paths.write_text_atomic(tmp_path / "lb.csv", "x")
    assert err.value.filename == str(tmp_path / "lb.csv")


def test_15_without_best_pt_the_hint_names_the_train_option(tmp_path):
    from kompete.train import state

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "step-00000001.pt").write_bytes(b"x")
    with pytest.raises(TrainingError) as err:
        state.choose_checkpoint(tmp_path, "best")
    assert "--from last" in err.value.render()


# --------------------------------------------------------------------------- 7: one --set everywhere


def test_7_a_mapping_value_in_set_works_for_campaign_start(fake_kaggle, tmp_path):
    counts = "generate.class_counts={masked: 200, unmasked: 56}"
    assert invoke("config", "sample-faces", "--set", counts).exit_code == 0
    result = invoke("campaign", "start", "sample-faces", "--name", "cc", "--out", str(tmp_path), "--no-push",
                    "--set", counts)
    assert result.exit_code == 0, result.output
    from kompete.ledger import campaign_store as store
    from kompete.ledger.store import Ledger

    with Ledger() as ledger:
        (k,) = store.kernels(ledger, store.campaign(ledger, "cc")["id"])
    assert k["changes"] == {"generate.class_counts": {"masked": 200, "unmasked": 56}}


# --------------------------------------------------------------------------- 8, 13, 14: init


@pytest.fixture
def flat_images(tmp_path) -> Path:
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(3):
        Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(root / f"{i}.png")
    return root


def test_8_init_refuses_to_shadow_a_configured_competition(flat_images, tmp_path, monkeypatch):
    from kompete.init import init_competition

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="already exists"):
        init_competition("sample-dogs", flat_images, out=tmp_path / "competitions")
    assert not (tmp_path / "competitions").exists()
    with pytest.raises(ConfigError, match="already exists"):  # not even the shipped file itself, forced
        init_competition("sample-dogs", flat_images, out=REPO / "competitions", force=True)
    # a folder no command searches shadows nothing
    assert init_competition("sample-dogs", flat_images, out=tmp_path / "elsewhere").written


def test_13_init_writes_a_local_dir_that_works_from_any_folder(flat_images, tmp_path, monkeypatch):
    from kompete.config import load_config
    from kompete.init import init_competition

    monkeypatch.chdir(tmp_path)
    result = init_competition("flat-one", Path("imgs"), out=tmp_path / "comps")
    monkeypatch.chdir(REPO)
    local = load_config(str(result.path)).data.local_dir
    assert Path(local).is_absolute() and Path(local) == flat_images.resolve()


def test_14_a_symlink_loop_is_no_class(flat_images):
    from kompete.init import inspect_folder

    (flat_images / "loop").symlink_to(flat_images, target_is_directory=True)
    (flat_images / "self").symlink_to(flat_images / "self")
    facts = inspect_folder(flat_images)
    assert facts.scan.flat and facts.n_images == 3 and facts.scan.loose == []


# --------------------------------------------------------------------------- 12: by_class folders


def test_12_validate_refuses_class_folders_the_competition_does_not_have(tmp_path):
    good = tmp_path / "good.zip"
    good.write_bytes(images_zip(["masked/0.png", "unmasked/1.png"]))
    bad = tmp_path / "bad.zip"
    bad.write_bytes(images_zip(["masked/0.png", "cats/1.png"]))
    low = ["--set", "output.n_min=2", "--set", "generate.n_images=100"]
    assert invoke("validate", "sample-faces", str(good), *low).exit_code == 0
    result = invoke("validate", "sample-faces", str(bad), *low)
    assert result.exit_code != 0 and "class folders the competition does not have: 1 (e.g. cats/)" in result.output


# --------------------------------------------------------------------------- 18: docs and help that drifted


def test_18_docs_and_help_say_what_the_code_does():
    from kompete.ledger.store import SCHEMA_VERSION

    assert f"the ledger is at version {SCHEMA_VERSION}" in (REPO / "docs" / "campaigns.md").read_text()
    readme = (REPO / "README.md").read_text()
    assert "about two minutes" not in readme and "make kernel COMP=generative-dog-images OWNER=" in readme
    assert "dataset" in invoke("assets", "push", "--help").output.split("--owner", 1)[1].split("--slug")[0]
    keys = invoke("config", "sample-dogs", "--keys").output
    (row,) = [line for line in keys.splitlines() if line.startswith("data.image_size ")]
    assert row.split()[1] == "32" and "(default 64)" in row  # sample-dogs' own value
    assert "kompete train" in invoke("runs", "list", "--db", os.environ["KOMPETE_DB"] + ".none").output
    assert "kompete score --help" not in invoke("score", "--help").output  # the help pointed at itself


@pytest.mark.parametrize("command", ["collect", "wait", "submit"])
def test_18_an_unknown_campaign_is_named_before_credentials_are_asked_for(tmp_path, monkeypatch, command):
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no kaggle.json either
    result = invoke("campaign", command, "nope", *(["--best"] if command == "submit" else []))
    assert result.exit_code != 0 and "no campaign 'nope'" in result.output, result.output
    assert "credential" not in result.output.lower()
