"""labels.txt round trips any single-line name; the machine's free memory is a real figure."""
from pathlib import Path

import pytest

from cnnbp.contract.errors import ArtifactError
from cnnbp.contract.labels import read_labels, write_labels
from cnnbp.contract.machine import available_bytes
from cnnbp.contract.preprocessing import Preprocessing


def test_labels_keep_spaces_commas_quotes_and_letters(tmp_path):
    names = ["sea lion", "a, b", 'say "hi"', "Ölfläche", "猫"]
    write_labels(tmp_path / "labels.txt", names)
    assert (tmp_path / "labels.txt").read_bytes() == "".join(n + "\n" for n in names).encode()
    assert read_labels(tmp_path / "labels.txt") == names


def test_missing_or_binary_labels_name_the_file(tmp_path):
    with pytest.raises(ArtifactError, match="labels.txt: the class names file is missing"):
        read_labels(tmp_path / "labels.txt")
    (tmp_path / "labels.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ArtifactError, match="labels.txt: .*cannot be read as UTF-8"):
        read_labels(tmp_path / "labels.txt")


def test_available_memory_is_positive_and_below_the_total():
    total = next(int(line.split()[1]) * 1024 for line in
                 Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
    assert 0 < available_bytes() <= total


@pytest.mark.parametrize("raw_max, words", [
    (255.0, "8-bit pixels 0..255, channels last (gray), resized (stretch) to 8x6"),
    (16.0, "raw values 0..16 (full white 16; from an 8-bit image: pixels / 255 * 16, rounded), "
           "channels last (gray), resized (stretch) to 8x6"),
    (1.0, "raw values 0..1 (full white 1; from an 8-bit image: pixels / 255 * 1), channels "
          "last (gray), resized (stretch) to 8x6"),
])
def test_raw_units_say_what_a_client_sends(raw_max, words):
    prep = Preprocessing.identity([6, 8, 1], 3).model_copy(update={"raw_max": raw_max})
    assert prep.raw_units == words


def test_raw_units_of_a_signal():
    assert Preprocessing.identity([40, 1], 3).raw_units == \
        "raw values in the training data's own units, channels last"
