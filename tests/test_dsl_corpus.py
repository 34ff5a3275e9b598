"""The bad-document corpus: every file states its expected error on its first line.

``# expect: LINE:COL: MESSAGE`` — the loader must raise ``DslError`` with exactly that
position and message (the document path is checked separately where it matters).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from progressd.dsl import load_plan, load_plan_text
from progressd.errors import DslError

BAD = Path(__file__).parent / "dsl" / "bad"
FILES = sorted(BAD.glob("*.yaml"))
_EXPECT = re.compile(r"# expect: (\d+):(\d+): (.*)")


def test_corpus_has_at_least_30_documents() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_bad_document_reports_expected_error(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    match = _EXPECT.fullmatch(first)
    assert match, f"{path.name}: first line must be '# expect: L:C: message'"
    with pytest.raises(DslError) as info:
        load_plan(str(path), cache=None)
    err = info.value
    assert (err.line, err.column) == (int(match.group(1)), int(match.group(2)))
    assert err.message == match.group(3)
    assert err.file == str(path)
    assert err.format().startswith(f"{path}:{err.line}:{err.column}: ")


@pytest.mark.parametrize(
    ("name", "doc_path"),
    [
        ("unknown_step_field", "load.scenarios[0].steps[0].htp"),
        ("bad_on_failure", "resources.ip-port-pool.backends.health-check.on-failure"),
        ("lease_unknown_pool", "load.scenarios[0].resource_lease.pool"),
        ("threshold_rate_above_one", "load.scenarios[0].thresholds.errors[1]"),
        ("v1_bad_ramp", "scenarios[0].ramp"),
        ("template_dunder", "load.scenarios[0].steps[0].http.url"),
        ("extract_header", "load.scenarios[0].steps[1].extract.token"),
    ],
)
def test_bad_document_names_document_path(name: str, doc_path: str) -> None:
    with pytest.raises(DslError) as info:
        load_plan(str(BAD / f"{name}.yaml"), cache=None)
    assert info.value.doc_path == doc_path


def test_template_error_column_points_at_the_culprit() -> None:
    doc = (
        "version: 2\nname: t\nload:\n  scenarios:\n    - name: s\n      steps:\n"
        '        - http: {url: "http://env/{{ lease.address }}/{{ env.HOME }}"}\n'
    )
    with pytest.raises(DslError) as info:
        load_plan_text(doc, cache=None)
    line = doc.splitlines()[6]
    assert info.value.line == 7
    assert info.value.column == line.index("env.HOME") + 1


def test_multiline_template_error_points_at_the_scalar() -> None:
    doc = (
        "version: 2\nname: t\nload:\n  scenarios:\n    - name: s\n      steps:\n"
        "        - http:\n            url: h\n            body: |\n              a\n"
        "              {{ cycler }}\n"
    )
    with pytest.raises(DslError) as info:
        load_plan_text(doc, cache=None)
    assert (info.value.line, info.value.column) == (9, 19)
