"""Blueprint mistakes: one clear message naming the file, line, key or layer, and the fix."""
import pytest

from cnnbp.builder import load, load_expression
from cnnbp.builder.errors import BlueprintError

GOOD = """\
name: small
input: [16, 16, 1]
classes: 4
pattern: "[(CONV-RELU)*N-POOL]*M-(FC-RELU)*K-SOFTMAX"
vars: {M: 2, N: 1, K: 1}
layers:
  CONV: {filters: [4, 8], kernel: 3, padding: same}
  FC: {units: 16}
"""


def error_of(path, overrides=()):
    with pytest.raises(BlueprintError) as exc:
        load(path, overrides)
    return str(exc.value)


def test_good_blueprint_loads(write_blueprint):
    assert load(write_blueprint(GOOD)).analysis.total_params > 0


def test_unknown_key_has_file_line_column_and_suggestion(write_blueprint):
    path = write_blueprint(GOOD.replace("classes: 4", "clases: 4"))
    text = error_of(path)
    assert f"{path}:3:" in text
    assert "clases: unknown key (did you mean classes?)" in text


def test_unknown_layer_argument_is_located(write_blueprint):
    path = write_blueprint(GOOD.replace("kernel: 3", "kernal: 3"))
    text = error_of(path)
    assert f"{path}:7:" in text and "layers.CONV.kernal: unknown key (did you mean kernel?)" in text


def test_every_schema_problem_is_reported(write_blueprint):
    path = write_blueprint(GOOD.replace("classes: 4", "classes: one")
                           .replace("units: 16", "units: -3"))
    text = error_of(path)
    assert "2 problems" in text
    assert f"{path}:3:" in text and "classes" in text
    assert f"{path}:8:" in text and "layers.FC.units" in text


def test_yaml_syntax_error_has_line(write_blueprint):
    path = write_blueprint("name: x\npattern: [unclosed\n")
    assert f"{path}:3:" in error_of(path) or f"{path}:2:" in error_of(path)


def test_list_length_mismatch_points_at_the_key(write_blueprint):
    path = write_blueprint(GOOD.replace("filters: [4, 8]", "filters: [4, 8, 16]"))
    text = error_of(path)
    assert f"{path}:7:" in text
    assert "layers.CONV.filters: has 3 values, but the repeat *M that encloses it runs 2 " \
        "times" in text


def test_unbound_variable(write_blueprint):
    text = error_of(write_blueprint(GOOD.replace("K: 1", "J: 1")))
    assert "variable K is unbound" in text and "--set K=" in text


def test_override_is_named_in_the_message(write_blueprint):
    text = error_of(write_blueprint(GOOD), ["N=[1, 2, 3]"])
    assert "(from --set N=[1, 2, 3])" in text


def test_spatial_size_reaching_zero_shows_the_arithmetic(write_blueprint):
    text = error_of(write_blueprint(GOOD), ["M=5", "layers.CONV.filters=4"])
    assert "stage5_pool" in text and "(1 - 2)/2 + 1 = 0.50, rounded to 0, below 1" in text
    assert "must stay >= 1" in text


def test_groups_must_divide_channels():
    with pytest.raises(BlueprintError, match=r"groups 2 must divide both the input channels \(3\)"):
        load_expression("INPUT(8x8x3)-CONV(4, 3, groups=2)-SOFTMAX", ["classes=2"])


def test_classes_must_match_the_last_fc():
    with pytest.raises(BlueprintError, match="last FC before SOFTMAX has 10 units but the "
                                             "blueprint has classes: 5"):
        load_expression("INPUT(8x8x1)-CONV(4, 3)-FC(10)-SOFTMAX", ["classes=5"])


def test_softmax_must_be_last():
    with pytest.raises(BlueprintError, match="SOFTMAX must appear once, as the last token"):
        load_expression("INPUT(8x8x1)-SOFTMAX-FC(3)")


def test_conv_after_flatten_is_refused():
    with pytest.raises(BlueprintError, match="CONV needs positions to work over"):
        load_expression("INPUT(8x8x1)-FC(8)-CONV(4)-SOFTMAX", ["classes=2"])


def test_missing_input_and_classes():
    with pytest.raises(BlueprintError) as exc:
        load_expression("CONV(4)-SOFTMAX")
    assert "classes: is not set" in str(exc.value)


def test_size_with_wrong_rank():
    with pytest.raises(BlueprintError, match=r"stage1_conv1.kernel has 2 dimensions \(3x3\) but "
                                             r"the input has 1 spatial dimension"):
        load_expression("INPUT(40x1)-CONV(4, 3x3)-SOFTMAX", ["classes=2"])


def test_missing_file_suggests_shipped_name():
    with pytest.raises(BlueprintError,
                       match=r"no blueprint file 'alexnte' \(did you mean alexnet\?\)"):
        load("alexnte")


def test_stride_with_dilation_is_refused_before_keras():
    with pytest.raises(BlueprintError, match="cannot stride and dilate at once"):
        load_expression("INPUT(16x16x1)-CONV(4, 3, stride=2, dilation=2)-SOFTMAX", ["classes=2"])


def test_non_strict_accepts_floor_rounding():
    a = load_expression("INPUT(7x7x1)-CONV(1, 3, stride=3)-SOFTMAX", ["classes=2", "strict=false"])
    assert a.analysis.layers[0].output_shape == (2, 2, 1)


def test_unknown_initializer_is_refused_at_check_time(write_blueprint):
    text = error_of(write_blueprint(GOOD + "weights: {init: he_norml}\n"))
    assert "weights.init: 'he_norml' is not one of" in text and "(did you mean he_normal?)" in text


def test_an_enum_of_booleans_is_listed_as_a_blueprint_writes_them():
    with pytest.raises(BlueprintError) as got:
        load("digits", ["training.mixed_precision=bf16"])
    assert ("training.mixed_precision: (from --set training.mixed_precision=bf16) 'bf16' is not "
            "one of auto, true, false, float16, bfloat16") in str(got.value)


@pytest.mark.parametrize("override,named,hint", [
    ("clases=5", "vars.clases", "did you mean classes?"),  # a top-level key, misspelt
    ("n=3", "vars.n", "did you mean N?"),                    # a variable, in the wrong case
    ("POOL=true", "vars.POOL", "K, M, N"),                   # a flag the pattern does not have
])
def test_an_override_that_matches_nothing_is_refused(write_blueprint, override, named, hint):
    message = error_of(write_blueprint(GOOD), [override])
    assert f"{named}: (from --set {override})" in message and "not used by the pattern" in message
    assert hint in message


def test_a_variable_no_part_of_the_pattern_uses_is_refused(write_blueprint):
    message = error_of(write_blueprint(GOOD.replace("K: 1}", "K: 1, P: 2}")))
    assert "vars.P: is not used by the pattern" in message


def test_a_variable_used_only_inside_a_switched_off_group_is_used(write_blueprint):
    text = GOOD.replace('"[(CONV-RELU)*N-POOL]*M-', '"[(CONV-RELU)*N-POOL]*M-(CONV(F)-RELU)?X-') \
        .replace("K: 1}", "K: 1, F: 8, X: false}")
    assert load(write_blueprint(text)).analysis.total_params > 0


def expression_error(pattern, overrides=()):
    with pytest.raises(BlueprintError) as exc:
        load_expression(pattern, overrides)
    return str(exc.value)


def test_choices_and_tokens_read_in_any_case():
    a = load_expression("INPUT(16x16x3)-conv(8,3,padding=SAME)-Relu-POOL-FC(4)-SOFTMAX")
    b = load_expression("INPUT(16x16x3)-CONV(8,3,padding=same)-RELU-POOL-FC(4)-SOFTMAX")
    assert a.analysis.total_params == b.analysis.total_params == \
        8 * 3 * 3 * 3 + 8 + 8 * 8 * 8 * 4 + 4


@pytest.mark.parametrize("token,ours", [("DENSE", "FC"), ("MAXPOOL", "POOL"), ("Conv2D", "CONV")])
def test_other_frameworks_names_point_at_ours(token, ours):
    message = expression_error(f"INPUT(16x16x3)-CONV(8,3)-RELU-{token}-FC(4)-SOFTMAX")
    assert f"unknown token {token} ({ours} is this tool's name for it)" in message


def test_activation_argument_says_activations_are_tokens():
    message = expression_error("INPUT(16x16x3)-CONV(8,3,activation=relu)-POOL-FC(4)-SOFTMAX")
    assert "an activation is a token of its own" in message and "did you mean" not in message


def test_repetitions_are_named_in_words_and_no_rounding_to_negatives():
    message = expression_error("INPUT(4x4x1)-[CONV(4,3)-RELU]*4-FC(10)-SOFTMAX")
    assert "pattern column 15, repetition 2 of *4)" in message and "= 0, below 1" in message
    assert "rounded to" not in message and "at 4[" not in message


def test_a_layer_that_a_flag_switches_on_is_named_with_the_fix():
    message = expression_error("INPUT(8x8x1)-CONV(4,3)-RELU-(CONV(4,kernel=9)-RELU)?C-FC(10)-"
                               "SOFTMAX", ["C=true"])
    assert "in the group ?C that C=true switches on (C=false drops it)" in message


@pytest.mark.parametrize("word,params", [("yes", 325_994), ("off", 1_472_874)])
def test_flags_take_yes_no_on_off(word, params):
    assert load("mnist1d", [f"POOL={word}"]).analysis.total_params == params


def test_channels_first_input_gets_a_hint(write_blueprint):
    message = error_of(write_blueprint(GOOD.replace("[16, 16, 1]", "[3, 16, 16]")))
    assert "looks channels-first" in message and "did you mean [16, 16, 3]?" in message


def test_a_two_number_input_states_how_it_was_read():
    from cnnbp.builder.summary import summary
    line = summary(load_expression("INPUT(32x32)-CONV(8,3)-RELU-POOL-FC(10)-SOFTMAX").analysis)
    assert "1-D input of length 32 with 32 channels (for a 32x32 image write 32x32x1 or x3)" in line


def test_one_dimensional_filters_read_as_width():
    from cnnbp.builder.summary import table
    text = table(load_expression("INPUT(40x1)-CONV(15,3)-RELU-POOL-FC(10)-SOFTMAX").analysis)
    assert "15 filters of width 3" in text and "15 3 filters" not in text


def test_a_run_or_bundle_folder_reads_its_resolved_blueprint(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "blueprint.yaml").write_text(GOOD, encoding="utf-8")
    assert load(str(tmp_path / "run")).network.name == "small"
    (tmp_path / "empty").mkdir()
    with pytest.raises(BlueprintError, match="is a folder without blueprint.yaml"):
        load(str(tmp_path / "empty"))


def test_a_two_number_size_list_says_how_it_was_read(write_blueprint):
    per_stage = load(write_blueprint(GOOD.replace("kernel: 3", "kernel: [1, 5]")))
    assert per_stage.notes == ("layers.CONV.kernel [1, 5] is read as one value per repetition of "
                               "*M (1, then 5); for a single 1x5 kernel, write 1x5",)
    one = load(write_blueprint(GOOD.replace("kernel: 3", "kernel: 1x5")))
    assert one.notes == () and one.network.layers[0].kernel == (1, 5)
    assert load(write_blueprint(GOOD)).notes == ()  # filters: [4, 8] is no size: no note


@pytest.mark.parametrize("names, key, detail", [
    ("[a, b, c, a]", "class_names[3]", "'a' is also class_names[0]; each class needs its own name"),
    ('[a, "", c, d]', "class_names[1]", "is ''; each class name must be one non-empty line"),
    ('[a, "b\\nc", c, d]', "class_names[1]", "must be one non-empty line"),
    ('[a, "b\\u2028c", c, d]', "class_names[1]", "must be one non-empty line"),
])
def test_class_names_name_one_class_each(write_blueprint, names, key, detail):
    path = write_blueprint(GOOD.replace("classes: 4", f"classes: 4\nclass_names: {names}"))
    text = error_of(path)
    assert f"{path}:4:" in text and f"{key}: " in text and detail in text
