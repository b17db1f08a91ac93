"""A ``--search-set`` value that cannot be read is reported under ``--search-set``, as typed
(it was once reported as ``--set 'value=…'``, a flag and a text the user never gave)."""
import pytest

from cnnbp.builder.errors import BlueprintError
from cnnbp.search.load import load


@pytest.mark.parametrize("item, said", [
    ("N=[1, 3", "--search-set: 'N=[1, 3': the value is not valid YAML"),
    ("N=!!python/object:os.system x", "--search-set: 'N=!!python/object:os.system x': the tag "
                                      "!!python/object:os.system is not allowed"),
])
def test_a_bad_value_names_the_flag_and_the_item(digits_space, item, said):
    with pytest.raises(BlueprintError) as info:
        load(digits_space(), [], [item])
    assert said in str(info.value) and "--set" not in str(info.value).replace("--search-set", "")
    assert "value=" not in str(info.value)
