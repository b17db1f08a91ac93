"""One trained digits run and its bundle for every report test, copied so nothing else sees
the report files written here."""
import shutil

import pytest


@pytest.fixture(scope="session")
def reported(made, tmp_path_factory):
    """``run`` and ``bundle`` copies of the session's run and bundle, with report.html written
    (the run's with the explain figures and the bundle's parity results)."""
    from cnnbp.report import write_bundle_report, write_run_report
    base = tmp_path_factory.mktemp("reported")
    shutil.copytree(made / "run", base / "run")
    shutil.copytree(made / "bundle", base / "bundle")
    write_run_report(base / "run", base / "bundle")
    write_bundle_report(base / "bundle")
    return base
