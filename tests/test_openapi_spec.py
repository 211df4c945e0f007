"""openapi/openapi.json is generated from the app; this fails when it drifts."""

from pathlib import Path

from adapter.openapi_spec import spec_json

SPEC = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"


def test_committed_spec_matches_the_app() -> None:
    assert SPEC.read_text(encoding="utf-8") == spec_json(), (
        "openapi/openapi.json is stale: run `.venv/bin/mj-adapter openapi > openapi/openapi.json`"
    )


def test_equal_literals_are_spelled_in_one_order() -> None:
    """typing caches Literals and equal ones (same values, any order) are one object: two
    spellings of one set make the spec's enum order depend on which module was imported first."""
    import re
    from collections import defaultdict
    from pathlib import Path

    spellings: dict[frozenset[str], set[tuple[str, ...]]] = defaultdict(set)
    for path in Path(__file__).resolve().parents[1].joinpath("adapter").rglob("*.py"):
        for m in re.finditer(r"Literal\[([^\]]+)\]", path.read_text(encoding="utf-8")):
            values = tuple(v.strip() for v in m.group(1).split(",") if v.strip())
            spellings[frozenset(values)].add(values)
    assert not {k: v for k, v in spellings.items() if len(v) > 1}
