"""Property tests: masking never raises, keeps the JSON shape, is idempotent, and no
planted PAN survives."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from finward.masking import Redactor, compile_redactor
from finward.masking.engine import EngineName
from finward.sandbox.identifiers import compute_luhn_digit

from .conftest import ENGINES

REDACTORS: dict[EngineName, Redactor] = {e: compile_redactor(engine=e) for e in ENGINES}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.from_regex(r"[0-9 +\-()@.A-Za-z]{0,40}", fullmatch=True),  # detector-dense text
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=25,
)


@st.composite
def pans(draw: st.DrawFn) -> str:
    first = draw(st.sampled_from("3456"))
    length = draw(st.integers(13, 19))
    body = first + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=length - 2, max_size=length - 2))
    )
    pan = body + compute_luhn_digit(body)
    if length == 16 and draw(st.booleans()):
        sep = draw(st.sampled_from(" -"))
        return sep.join(pan[i : i + 4] for i in range(0, 16, 4))
    return pan


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return ("object", [shape(v) for v in value.values()])
    if isinstance(value, list | tuple):
        return ("array", [shape(v) for v in value])
    return "scalar"


@settings(max_examples=300, deadline=None)
@given(value=json_values, engine=st.sampled_from(ENGINES))
def test_json_masking_never_raises_keeps_shape_and_is_idempotent(
    value: Any, engine: EngineName
) -> None:
    redactor = REDACTORS[engine]
    once = redactor.redact_json(value)
    assert shape(once.value) == shape(value)
    twice = redactor.redact_json(once.value)
    assert twice.value == once.value
    assert all(f.masked for f in once.findings)


@settings(max_examples=300, deadline=None)
@given(text=st.text() | st.from_regex(r"[0-9 +\-().,@A-Za-z]{0,60}", fullmatch=True))
def test_text_masking_is_idempotent_and_engines_agree(text: str) -> None:
    results = [REDACTORS[e].redact_text(text) for e in ENGINES]
    assert len({r.text for r in results}) == 1
    assert len({r.findings for r in results}) == 1
    once = results[0].text
    assert REDACTORS[ENGINES[0]].redact_text(once).text == once


@settings(max_examples=300, deadline=None)
@given(left=st.text(max_size=30), pan=pans(), right=st.text(max_size=30))
def test_no_planted_pan_survives(left: str, pan: str, right: str) -> None:
    for redactor in REDACTORS.values():
        text = f"{left} {pan} {right}"
        assert pan not in redactor.redact_text(text).text
        masked = redactor.redact_json({"remittance": text, "list": [pan]}).value
        assert pan not in masked["remittance"] and pan not in masked["list"][0]
