"""Any YAML a user can write is a valid config or one InputError naming the file: never another exception."""

import string

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmscel.blend.run import load_blend_config
from mmscel.config import RunConfig, load_run_config
from mmscel.errors import InputError

KEYS = sorted(RunConfig.model_fields) + ["unknown_key"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=string.printable, max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS + ["alpha", "scheme"]), inner),
    max_leaves=6,
)
BASE = {"task": "cite", "learner": "ridge"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4))
def test_a_run_config_is_valid_or_one_input_error(tmp_path, fields):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**BASE, **fields}))
    try:
        config = load_run_config(path)
    except InputError as exc:
        assert exc.where == str(path) and "\n" not in str(exc)
    else:
        assert config.task in ("cite", "multi") and config.seed >= 0


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_any_text_as_a_blend_config_is_valid_or_one_input_error(tmp_path, text):
    path = tmp_path / "blend.yaml"
    path.write_text(text)
    try:
        config = load_blend_config(path)
    except InputError as exc:
        assert exc.where == str(path) and "\n" not in str(exc)
    else:
        assert config.n_trials >= 1
