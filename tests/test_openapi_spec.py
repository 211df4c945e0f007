"""openapi/openapi.json is generated from the app; this fails when it drifts."""

from pathlib import Path

from adapter.openapi_spec import spec_json

SPEC = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"


def test_committed_spec_matches_the_app() -> None:
    assert SPEC.read_text(encoding="utf-8") == spec_json(), (
        "openapi/openapi.json is stale: run `.venv/bin/mj-adapter openapi > openapi/openapi.json`"
    )
