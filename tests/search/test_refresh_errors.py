"""``cnnbp search --refresh OUT`` and a search missing its required flags: clear refusals."""
from __future__ import annotations

from cnnbp import cli


def test_refresh_of_a_folder_that_is_no_search_is_refused(tmp_path, capsys):
    assert cli.main(["search", "--refresh", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"--refresh {tmp_path}: {tmp_path / 'search.json'} does not exist" in err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_refresh_of_a_damaged_search_json_is_refused(tmp_path, capsys):
    (tmp_path / "search.json").write_text('{"storage": "sqlite:///x.db"}')
    assert cli.main(["search", "--refresh", str(tmp_path)]) == 2
    assert "is not what cnnbp search writes ('study_name')" in capsys.readouterr().err


def test_a_search_without_its_flags_names_them(tmp_path, capsys):
    assert cli.main(["search", "bp.yaml", "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert "cnnbp search needs --trials, -o: e.g. cnnbp search digits_search" in err
