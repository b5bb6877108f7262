"""Channel notifications as received: every one stored for audit, good or bad."""

from __future__ import annotations

from datetime import datetime

from paymux.store.db import Database
from paymux.store.tables import channel_notifications


async def record_notification(
    db: Database,
    *,
    channel: str,
    verified: bool,
    result: str,
    reference: str | None,
    detail: str | None,
    body: str,
    received_at: datetime,
) -> None:
    async with db.write() as conn:
        await conn.execute(
            channel_notifications.insert().values(
                channel=channel,
                verified=verified,
                result=result,
                reference=reference,
                detail=detail,
                body=body,
                received_at=received_at,
            )
        )
