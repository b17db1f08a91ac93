"""Hostile or runaway blueprints: `cnnbp check` refuses each at once with one located message.

Every case runs the real CLI in a subprocess with its address space capped, so a regression
(a traceback, a RecursionError, an alias bomb or an unrolling that eats memory) fails here
instead of taking the machine with it.
"""
import subprocess
import sys
import time

import pytest

from cnnbp.builder import source
from cnnbp.builder.errors import BlueprintError
from cnnbp.builder.expand import MAX_LAYERS, expand
from cnnbp.builder.pattern import parse
from tests.conftest import ROOT

MEMORY_CAP = 2 << 30   # a check needs ~50 MB; the bombs below ask for many GB
SECONDS = 10           # each refusal takes well under a second; generous for CI

BOMB = "\n".join(["name: bomb", "pattern: CONV-SOFTMAX", "a: &a [x, x, x, x, x, x, x, x, x, x]"]
                 + [f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]"
                    for p, n in zip("abcdefgh", "bcdefghi")]) + "\n"
SET_BOMB = "N=[&a [x,x,x,x,x,x,x,x,x,x]" + "".join(
    f", &{n} [{','.join([f'*{p}'] * 10)}]" for p, n in zip("abcdefgh", "bcdefghi")) + "]"
SMALL = "name: small\ninput: [8, 8, 1]\nclasses: 2\npattern: CONV-SOFTMAX\n"


def _cap_memory():
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def check(*args):
    """Run `cli.py check ARGS`; return the process and its wall time."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "check", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          preexec_fn=_cap_memory if sys.platform != "win32" else None)
    return proc, time.monotonic() - start


def refused(*args) -> str:
    """Assert the CLI refuses ARGS as a blueprint mistake, quickly, in one line; return it."""
    proc, seconds = check(*args)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert seconds < SECONDS, f"took {seconds:.1f} s"
    return proc.stderr


def test_nul_byte_is_located(write_blueprint):
    path = write_blueprint("name: x\npattern: \"CONV\x00-SOFTMAX\"\n")
    assert f"{path}:2:15: not valid YAML: the character #x0000 (a NUL byte) is not allowed" \
        in refused(path)


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/object:os.system",
                                 "!!python/name:os.system", "!!binary", "!custom"])
def test_unknown_tags_are_refused_and_never_constructed(write_blueprint, tmp_path, tag):
    marker = tmp_path / "constructed"
    path = write_blueprint(f"name: x\npattern: CONV-SOFTMAX\nvars:\n  N: {tag} "
                           f"['touch {marker}']\n")
    assert f"{path}:4:6: the tag {tag} is not allowed" in refused(path)
    assert not marker.exists()


@pytest.mark.parametrize("value, message", [
    ("!!int", "'' is not a valid !!int"), ("!!int abc", "'abc' is not a valid !!int"),
    ("!!bool maybe", "'maybe' is not a valid !!bool"), ("!!float x", "'x' is not a valid !!float"),
    ("!!str [1]", "the tag !!str does not fit a list"), ("!!seq a", "the tag !!seq needs a list"),
])
def test_plain_tags_must_fit_their_values(write_blueprint, value, message):
    # ruamel's own constructors crash (IndexError, KeyError, ValueError) on these.
    assert f":6:6: {message}" in refused(write_blueprint(SMALL + f"vars:\n  N: {value}\n"))
    assert message in refused("vgg16", "--set", f"N={value}")


def test_plain_tags_that_fit_are_accepted(write_blueprint):
    path = write_blueprint(SMALL.replace("name: small", "name: !!str small")
                           .replace("classes: 2", "classes: !!int 0x2")
                           .replace("CONV-SOFTMAX", "CONV(4)-SOFTMAX"))
    proc, _ = check(path)
    assert proc.returncode == 0 and proc.stdout.startswith("small: ok"), proc.stderr


def test_unknown_tag_in_set_is_refused():
    assert "the tag !!python/object/apply:os.system is not allowed" in \
        refused("vgg16", "--set", "N=!!python/object/apply:os.system [ls]")


@pytest.mark.parametrize("text", ["a: " + "[" * 5000 + "]" * 5000,
                                  "".join(f"{'  ' * i}a:\n" for i in range(150)) + "  " * 150
                                  + "1",
                                  "a: " + "{b: " * 3000 + "1" + "}" * 3000])
def test_deep_yaml_nesting_is_refused(write_blueprint, text):
    text = refused(write_blueprint(text + "\n"))
    assert "lists and mappings nest more than 100 levels deep here; the limit is 100" in text


def test_yaml_nested_within_the_limit_still_checks(write_blueprint):
    path = write_blueprint(SMALL + "layers:\n  CONV:\n    filters: " + "[" * 50 + "4"
                           + "]" * 50 + "\n")
    assert "is a list nested one level too deep" in refused(path)  # an ordinary error


def test_deep_yaml_in_set_is_refused():
    assert "nest more than 100 levels deep" in refused("vgg16", "--set",
                                                       "N=" + "[" * 5000 + "]" * 5000)


def test_deep_pattern_nesting_is_refused():
    text = refused("-e", "(" * 5000 + "CONV(8)" + ")" * 5000)
    assert "<expression>: pattern: column 101: brackets nest more than 100 levels deep; " \
           "the limit is 100" in text


def test_pattern_nested_100_deep_still_checks():
    pattern = "INPUT(8x8x1)-" + "(" * 99 + "CONV(4, 1)" + ")*1" * 99 + "-SOFTMAX"
    proc, _ = check("-e", pattern, "--set", "classes=2")
    assert proc.returncode == 0, proc.stderr


def test_long_pattern_is_refused():
    assert "pattern: is 23,999 characters long; the limit is 10,000" in \
        refused("-e", "-".join(["CONV(8)"] * 3000))


@pytest.mark.parametrize("value", ["&a [*a]", "&a {b: *a}", "&a [1, [2, *a]]"])
def test_recursive_alias_in_set_is_refused(value):
    text = refused("vgg16", "--set", f"vars.N={value}")
    assert "the alias *a is inside the list or mapping &a that it names" in text


def test_recursive_alias_in_file_is_refused(write_blueprint):
    path = write_blueprint(SMALL + "vars:\n  N: &a [1, *a]\n")
    assert f"{path}:6:13: the alias *a is inside the list or mapping &a that it names" \
        in refused(path)


def test_alias_bomb_is_refused_before_it_grows(write_blueprint):
    text = refused(write_blueprint(BOMB))
    assert "holds more than 100,000 values once its aliases are expanded" in text
    assert "the limit is 100,000" in text


def test_alias_bomb_in_set_is_refused():
    assert "holds more than 100,000 values once its aliases are expanded" in \
        refused("vgg16", "--set", SET_BOMB)


def test_ordinary_aliases_and_merge_keys_still_work(write_blueprint):
    path = write_blueprint(SMALL.replace("CONV-SOFTMAX", "CONV-CONV(f)-SOFTMAX")
                           + "vars: {f: &four 4}\n"
                           + "layers:\n  CONV:\n    <<: {filters: *four, kernel: 1}\n"
                           + "    stride: 1\n")
    proc, _ = check(path)
    assert proc.returncode == 0, proc.stderr


def test_huge_repeat_is_refused_before_unrolling():
    text = refused("-e", "INPUT(32x32x3)-[CONV(8)-RELU]*1000000000-FC(10)-SOFTMAX")
    assert "the pattern unrolls to 2,000,000,002 layers; the limit is 10,000" in text
    assert "(the repeat at pattern column 30 runs 1,000,000,000 times)" in text


def test_huge_repeat_from_vars_points_at_the_variable(write_blueprint):
    path = write_blueprint(SMALL.replace("CONV-SOFTMAX", "(CONV(4, 1)-RELU)*N-SOFTMAX")
                           + "vars:\n  N: 1000000000\n")
    text = refused(path)
    assert f"{path}:6:6: vars.N: the pattern unrolls to 2,000,000,001 layers; the limit is " \
           "10,000 (the repeat *N at pattern column 18 runs 1,000,000,000 times)" in text


def test_huge_repeat_per_repetition_is_refused():
    text = refused("vgg16", "--set", "N=[2, 2, 3, 3, 1000000000]")
    assert "(from --set N=[2, 2, 3, 3, 1000000000]) the pattern unrolls to 2,000,000,032 " \
           "layers; the limit is 10,000" in text


def test_nested_repeats_are_counted_not_unrolled():
    text = refused("-e", "INPUT(8x8x1)-(((CONV(4)*9223372036854775807)*9223372036854775807)"
                         "*9223372036854775807)-SOFTMAX", "--set", "classes=2")
    assert "unrolls to about 10^56 layers; the limit is 10,000" in text


def test_repeats_of_nothing_are_bounded_too():
    text = refused("-e", "INPUT(8x8x1)-(CONV(4)?X)*1000000000-SOFTMAX", "--set", "X=false",
                   "--set", "classes=2")
    assert "unrolling the pattern would take 1,000,000,004 steps (one per item per " \
           "repetition), though most add no layer; the limit is 100,000" in text


def test_layer_limit_boundary():
    assert len(expand(parse(f"RELU*{MAX_LAYERS}"), {}, {})) == MAX_LAYERS
    assert len(expand(parse("INPUT(8x8x1)-RELU*N"), {"N": MAX_LAYERS}, {})) == MAX_LAYERS + 1
    with pytest.raises(BlueprintError, match="unrolls to 10,001 layers; the limit is 10,000"):
        expand(parse("RELU*N"), {"N": MAX_LAYERS + 1}, {})
    with pytest.raises(BlueprintError, match="unrolls to 10,002 layers"):
        expand(parse("(RELU*N)*M"), {"M": 2, "N": [1, MAX_LAYERS + 1]}, {})


def test_repeats_that_vary_by_repetition_are_counted_one_by_one_and_stop_early():
    # X varies with M, so M's repetitions are counted one at a time; the count stops as soon
    # as it passes the limit instead of walking all 200,000 steps.
    with pytest.raises(BlueprintError, match=r"would take more than 100,\d{3} steps"):
        expand(parse("[(CONV(4)?X)*1000]*M"), {"M": 200, "X": [False] * 200}, {})
    assert len(expand(parse("[(RELU?X)*3]*M"), {"M": 2, "X": [False, True]}, {})) == 3


@pytest.mark.parametrize("args, message", [
    (["-e", f"INPUT(8x8x1)-CONV({'9' * 5000})-SOFTMAX"],
     "column 19: 99999999999999999999… (5,000 digits) does not fit in 64 bits"),
    (["-e", "INPUT(8x8x1)-CONV(4)*99999999999999999999-SOFTMAX"],
     "column 22: 99999999999999999999 does not fit in 64 bits"),
    (["vgg16", "--set", "N=-99999999999999999999"],
     "-99999999999999999999 does not fit in 64 bits"),
    (["vgg16", "--set", f"input={'9' * 5000}x4x3"], "(5,000 digits) does not fit in 64 bits"),
    (["-e", "INPUT(1x1x1)-(CONV(1, 3, stride=10, pad=1)-RELU)*100-SOFTMAX", "--set",
      "classes=2"], "stage1_conv19: (CONV; pattern column 15, repetition 19 of *100) the "
                    "strides up to here multiply to more than 9,223,372,036,854,775,807 (64 bits)"),
])
def test_oversize_numbers_are_refused(args, message):
    assert message in refused(*args)


def test_oversize_number_in_file_is_located(write_blueprint):
    path = write_blueprint(SMALL.replace("classes: 2", "classes: " + "9" * 5000))
    assert f"{path}:3:10: a whole number written with 5,000 characters does not fit in 64 " \
           "bits" in refused(path)


@pytest.mark.parametrize("pattern, params", [
    ("INPUT(32x32x3)-CONV(99999999999)-FC(10)-SOFTMAX", "902,799,999,990,982 params"),
    ("INPUT(100000x100000x3)-CONV(8)-FC(10)-SOFTMAX", "799,968,000,554 params"),
])
def test_large_but_representable_nets_get_an_answer(pattern, params):
    proc, seconds = check("-e", pattern)
    assert proc.returncode == 0, proc.stderr
    assert params in proc.stdout and seconds < SECONDS


def test_file_over_256_kib_is_refused(write_blueprint):
    path = write_blueprint(SMALL + "description: " + "x" * (1 << 20) + "\n")
    assert f"{path}: the file is larger than 262,144 bytes (256 KiB), the limit for a " \
           "blueprint" in refused(path)


def test_values_are_counted_while_parsing(write_blueprint, monkeypatch):
    # A long plain list is refused as it is parsed, before it is all in memory; the real
    # limit is 100,000, which would take seconds of parsing to reach here.
    monkeypatch.setattr(source, "MAX_VALUES", 100)
    path = write_blueprint(SMALL + "vars:\n  N: [" + ", ".join(["1"] * 200) + "]\n")
    with pytest.raises(BlueprintError, match=r":6:\d+: the blueprint holds more than 100 "
                                             r"values; the limit is 100$"):
        source.read(path)
