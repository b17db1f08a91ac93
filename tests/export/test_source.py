"""What an export reads, before TensorFlow: the run's resolved blueprint through the one
reader (``builder.load_resolved``), the source path, and the output folder (``destination``)."""
import shutil

import pytest

from cnnbp.builder import BlueprintError, load_resolved
from cnnbp.contract.errors import ArtifactError, UsageError
from cnnbp.export import destination
from cnnbp.export.source import locate_source
from tests.conftest import ROOT


def test_a_run_folder_or_its_file_gives_the_compiled_net(tmp_path):
    shutil.copy(ROOT / "blueprints" / "lenet5.yaml", tmp_path / "blueprint.yaml")
    for given in (tmp_path, tmp_path / "blueprint.yaml", str(tmp_path)):
        compiled = load_resolved(given)
        assert compiled.network.name == "lenet5" and compiled.network.classes == 10


def test_a_missing_resolved_blueprint_is_never_a_shipped_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lenet5").mkdir()  # a run folder named like a shipped blueprint
    with pytest.raises(ArtifactError, match=r"lenet5/blueprint.yaml: the resolved blueprint is "
                                            "missing"):
        load_resolved("lenet5")
    with pytest.raises(ArtifactError, match="the resolved blueprint is missing"):
        load_resolved(tmp_path / "nowhere" / "blueprint.yaml")


def test_a_damaged_resolved_blueprint_goes_through_the_guarded_loader(tmp_path):
    path = tmp_path / "blueprint.yaml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(BlueprintError, match="blueprint.yaml.*cannot read the file"):
        load_resolved(tmp_path)
    path.write_text("name: !!python/object:os.system x\npattern: INPUT(8x8x1)-FC(2)-SOFTMAX\n")
    with pytest.raises(BlueprintError, match=r"tag !!python/object:os.system is not allowed"):
        load_resolved(tmp_path)


def test_a_wrong_source_is_refused_naming_it(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        locate_source(tmp_path / "nothing")
    (tmp_path / "run").mkdir()
    with pytest.raises(ArtifactError, match="neither a finished run directory"):
        locate_source(tmp_path / "run")
    (tmp_path / "m.keras").write_bytes(b"")
    assert locate_source(tmp_path / "m.keras") == (tmp_path / "m.keras", None, tmp_path / "m.keras")


def test_prepare_refuses_its_source_and_plans_a_move_aside(tmp_path, monkeypatch):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    with pytest.raises(UsageError, match="contains .*which this export reads"):
        destination.prepare(tmp_path / "runs", [run], force=True)
    with pytest.raises(UsageError, match="is the current folder"):
        destination.prepare(".", [run], force=True)
    assert destination.prepare(tmp_path / "new", [run], force=False) is None
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(UsageError, match=r"notes.txt.*--force"):
        destination.prepare(mine, [run], force=False)
    backup = destination.prepare(mine, [run], force=True)
    assert backup.parent == tmp_path and backup.name.startswith("mine.replaced-")
    assert not backup.exists() and (mine / "notes.txt").read_text() == "precious"  # only planned
