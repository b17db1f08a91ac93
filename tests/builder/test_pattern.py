"""The pattern grammar: the seeds' notation as written, inline arguments, syntax errors."""
import pytest

from cnnbp.builder.errors import BlueprintError
from cnnbp.builder.pattern import Optional, Repeat, Seq, Size, Word, parse


def test_seed_notation_parses_as_written():
    tree = parse("[(CONV-RELU)*N-POOL?]*M-(FC-RELU)*K-SOFTMAX")
    assert isinstance(tree, Seq) and len(tree.items) == 3
    stages, head, softmax = tree.items
    assert isinstance(stages, Repeat) and stages.count == "M"
    inner, pool = stages.body.items
    assert isinstance(inner, Repeat) and inner.count == "N"
    assert [c.token for c in inner.body.items] == ["CONV", "RELU"]
    assert isinstance(pool, Optional) and pool.flag == "POOL" and pool.body.token == "POOL"
    assert isinstance(head, Repeat) and head.count == "K"
    assert softmax.token == "SOFTMAX"


def test_one_liner_with_inline_arguments():
    tree = parse("INPUT(32x32x3)-CONV(10, 5x5, stride=1, pad=2)-RELU-POOL(avg, 2)-FC(10)-SOFTMAX")
    inp, conv, _, pool, fc, _ = tree.items
    assert inp.positional == (Size((32, 32, 3)),)
    assert conv.positional == (10, Size((5, 5))) and conv.keywords == (("stride", 1), ("pad", 2))
    assert pool.positional == (Word("avg"), 2)
    assert fc.positional == (10,)


def test_numbers_and_literal_repeats():
    tree = parse("LEAKY_RELU(-0.5)-LRN(alpha=1e-4)*3")
    assert tree.items[0].positional == (-0.5,)
    assert isinstance(tree.items[1], Repeat) and tree.items[1].count == 3
    assert tree.items[1].body.keywords == (("alpha", 1e-4),)


def test_labelled_optional_group():
    tree = parse("(CONV(kernel=1)-RELU)?C")
    assert isinstance(tree, Optional) and tree.flag == "C" and isinstance(tree.body, Seq)


def test_unlabelled_optional_group_is_refused():
    with pytest.raises(BlueprintError, match="needs a flag name after '\\?'"):
        parse("(BN-RELU)?-SOFTMAX")


@pytest.mark.parametrize("text,column", [("[(CONV-RELU)*N-POOL?]]*M", 22), ("CONV--RELU", 6),
                                         ("CONV(3", 7)])
def test_syntax_error_names_the_column(text, column):
    with pytest.raises(BlueprintError) as exc:
        parse(text)
    assert f"syntax error at column {column}" in str(exc.value)
