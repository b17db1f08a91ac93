"""``cnnbp search``'s command module: its flags become the search's settings, and a bad
--trials is refused before anything is read or made."""
from __future__ import annotations

import pytest

from cnnbp.commands import search as command
from cnnbp.commands.assemble import parse, parser
from cnnbp.contract.errors import UsageError


def test_the_flags_and_their_defaults(tmp_path):
    args = parse(parser(), ["search", "bp.yaml", "--data", "digits", "--trials", "3", "-o",
                            str(tmp_path / "out"), "--objective", "accuracy,macs",
                            "--search-set", "N=[1, 2]", "--set", "K=2"])
    assert args.run is command.run
    assert (args.trials, args.objective, args.search_set, args.set) == (
        3, "accuracy,macs", ["N=[1, 2]"], ["K=2"])
    assert (args.study_name, args.seed, args.storage, args.quiet) == ("search", 0, None, False)


@pytest.mark.parametrize("trials", ["0", "-2"])
def test_trials_below_one_are_refused_before_anything_is_made(tmp_path, trials):
    args = parse(parser(), ["search", str(tmp_path / "missing.yaml"), "--data", "digits",
                            "--trials", trials, "-o", str(tmp_path / "out")])
    with pytest.raises(UsageError, match=f"--trials must be >= 1, got {trials}"):
        command.run(args)
    assert list(tmp_path.iterdir()) == []
