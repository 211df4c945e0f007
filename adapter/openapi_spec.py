"""The OpenAPI document of the app, as committed in openapi/openapi.json."""

from __future__ import annotations

import json

from adapter.app import create_app
from adapter.config import Settings


def spec_dict() -> dict[str, object]:
    app = create_app(Settings())
    return app.openapi_schema.to_schema()


def spec_json() -> str:
    return json.dumps(spec_dict(), indent=2, sort_keys=True) + "\n"
