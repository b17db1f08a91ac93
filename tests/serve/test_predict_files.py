"""`cnnbp predict` through a server, HTTP and gRPC: the good files get their answers, each bad
one an error line, and the exit status says some input was bad."""
import pytest
from PIL import Image

from cnnbp import cli


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_remote_predict_answers_good_files_and_names_bad_ones(server, tmp_path, capsys, scheme):
    for name in ("good.png", "good2.png"):
        Image.new("L", (8, 8), 128).save(tmp_path / name)
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")
    files = [str(tmp_path / n) for n in ("good.png", "corrupt.jpg", "good2.png", "missing.png")]
    url = server.url if scheme == "http" else f"grpc://{server.grpc_target}"
    assert cli.main(["predict", "--url", url, "--model", "digits", *files]) == 2
    out, err = capsys.readouterr()
    assert [line.split(":")[0] for line in out.splitlines()] == [files[0], files[2]]
    errors = err.splitlines()
    assert len(errors) == 2 and errors[0].startswith(f"error: {files[1]}: ")
    assert errors[1] == f"error: {files[3]}: No such file or directory"
