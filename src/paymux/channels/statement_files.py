"""Writing a downloaded statement to disk atomically (no half-written file on failure)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path


async def save_stream(chunks: AsyncIterator[bytes], dest: Path, *, max_bytes: int) -> Path:
    """Stream ``chunks`` into ``dest`` via a temporary file; raise ValueError past max_bytes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    size = 0
    try:
        with tmp.open("wb") as fh:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise ValueError(f"statement larger than {max_bytes} bytes")
                fh.write(chunk)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return dest
