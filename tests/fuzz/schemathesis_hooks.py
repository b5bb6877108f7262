"""Extra schemathesis check for the fuzz run: a 405 names exactly the methods the document
lists for the path (schemathesis's own check only wants the header present)."""

from __future__ import annotations

from typing import Any

import schemathesis

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@schemathesis.check
def allow_header_complete(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code != 405:
        return None
    allow = response.headers.get("allow") or []
    value = ", ".join(allow) if isinstance(allow, list) else str(allow)
    advertised = {m.strip().lower() for m in value.split(",") if m.strip()}
    declared = {m for m in case.operation.schema.raw_schema["paths"][case.operation.path]}
    declared &= HTTP_METHODS
    if advertised != declared:
        raise AssertionError(
            f"405 Allow {sorted(advertised)} != documented methods {sorted(declared)}"
        )
    return None
