"""`cnnbp serve` and `cnnbp predict` from their flags, and the start-up checks of serve.runner
that refuse bad settings before any model loads."""
import argparse
import socket
from types import SimpleNamespace

import pytest

from cnnbp.commands import predict as predict_command
from cnnbp.commands import serve as serve_command
from cnnbp.contract.errors import UsageError
from cnnbp.serve import runner
from cnnbp.serve.config import ServeConfig
from cnnbp.serve.grpc_service import max_message


def parse(module, argv):
    parser = argparse.ArgumentParser()
    module.register(parser.add_subparsers())
    return parser.parse_args(argv)


def served_config(monkeypatch, argv, env=None):
    """The ServeConfig `cnnbp serve ARGV` hands to runner.serve (which is not run)."""
    seen = []
    monkeypatch.setattr(runner, "serve", seen.append)
    monkeypatch.delenv("CNNBP_TOKEN", raising=False)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    assert serve_command.run(parse(serve_command, ["serve", *argv])) == 0
    return seen[0]


def test_the_flags_defaults_are_the_records_defaults(monkeypatch):
    assert served_config(monkeypatch, ["bundles"]) == ServeConfig("bundles")


def test_each_flag_lands_in_its_field(monkeypatch):
    config = served_config(monkeypatch, [
        "b", "--host", "0.0.0.0", "--port", "9000", "--no-grpc", "--no-access-log",
        "--max-batch", "8", "--max-delay-ms", "0", "--max-body", "1000", "--max-batch-rows",
        "4", "--max-image-pixels", "99", "--max-header-bytes", "2048", "--timeout-header", "1.5",
        "--timeout-body", "2.5", "--timeout-keep-alive", "3.5", "--max-connections", "7",
        "--grace", "12.5"],
        env={"CNNBP_TOKEN": "from-env"})
    assert config == ServeConfig(
        "b", host="0.0.0.0", port=9000, grpc_port=None, access_log=False, max_batch=8,
        max_delay_ms=0.0, max_body=1000, max_batch_rows=4, max_image_pixels=99,
        max_header_bytes=2048, timeout_header=1.5, timeout_body=2.5, timeout_keep_alive=3.5,
        max_connections=7, grace=12.5, token="from-env")
    assert served_config(monkeypatch, ["b", "--token", "flag"],
                         env={"CNNBP_TOKEN": "env"}).token == "flag"


def test_predict_refuses_a_top_k_below_1_and_a_url_without_a_model():
    with pytest.raises(UsageError, match="--top-k must be 1 or more"):
        predict_command.run(parse(predict_command, ["predict", "b", "x.png", "--top-k", "0"]))
    with pytest.raises(UsageError, match="--url needs --model NAME"):
        predict_command.run(parse(predict_command, ["predict", "x.png", "--url", "http://h:1"]))
    with pytest.raises(UsageError, match="no files to classify"):
        predict_command.run(parse(predict_command, ["predict", "bundles/digits"]))


@pytest.mark.parametrize("host,loopback", [("localhost", True), ("127.0.0.1", True),
                                           ("::1", True), ("127.8.9.1", True),
                                           ("0.0.0.0", False), ("example.org", False)])
def test_loopback_hosts(host, loopback):
    assert runner.is_loopback(host) is loopback


def test_a_public_host_without_a_token_is_refused_before_loading(tmp_path):
    missing = tmp_path / "no-bundles-here"  # never read: the check comes first
    with pytest.raises(UsageError, match="--host 0.0.0.0: serving there exposes the models"):
        runner.serve(ServeConfig(str(missing), host="0.0.0.0"))


def test_a_taken_port_is_refused_with_its_flag(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=f"--port {port}: cannot listen on 127.0.0.1"):
            runner.serve(ServeConfig(str(tmp_path), port=port, grpc_port=None))
        with pytest.raises(UsageError, match=f"--grpc-port {port}: .*or --no-grpc"):
            runner.serve(ServeConfig(str(tmp_path), port=0, grpc_port=port))


def test_grpc_takes_messages_as_large_as_the_row_cap_needs_within_max_body():
    models = {"a": SimpleNamespace(input_shape=(8, 8, 1)), "b": SimpleNamespace(input_shape=(40,))}
    app = SimpleNamespace(models=models, config=ServeConfig("-", max_batch=16))
    assert max_message(app) == 16 * 64 * 8 + (64 << 10)
    app = SimpleNamespace(models=models, config=ServeConfig("-", max_body=1000))
    assert max_message(app) == 1000
