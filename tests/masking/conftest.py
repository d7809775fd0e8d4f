from __future__ import annotations

import pytest

from finward.masking import Redactor, compile_redactor
from finward.masking.engine import DEFAULT_ENGINE, EngineName

# Both engines run the same tests: RE2 is the production engine; the stdlib fallback
# must find exactly the same spans.
ENGINES: list[EngineName] = ["re2", "re"] if DEFAULT_ENGINE == "re2" else ["re"]


@pytest.fixture(params=ENGINES)
def redactor(request: pytest.FixtureRequest) -> Redactor:
    engine: EngineName = request.param
    return compile_redactor(engine=engine)


def masked_text(redactor: Redactor, text: str) -> str:
    return redactor.redact_text(text).text


def categories(redactor: Redactor, text: str) -> list[str]:
    return [str(f.category) for f in redactor.redact_text(text).findings]
