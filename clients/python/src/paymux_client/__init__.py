"""Typed Python client for the Paymux gateway.

>>> from paymux_client import Paymux
>>> client = Paymux(api_key="sk_...", base_url="http://127.0.0.1:8000")
"""

from paymux_client._async_client import AsyncPaymux
from paymux_client._client import Paymux
from paymux_client._core import VERSION
from paymux_client.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    IdempotencyKeyReusedError,
    InsufficientFundsError,
    NotFoundError,
    PaymuxError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    UnprocessableEntityError,
    WebhookVerificationError,
)
from paymux_client.models import (
    Balance,
    BalanceTransaction,
    Event,
    FeeReport,
    FeeReportLine,
    Merchant,
    Page,
    Payee,
    Quote,
    Redelivery,
    Topup,
    Transfer,
    TransferBatch,
    TransferBatchItem,
    TransferStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from paymux_client.webhooks import verify as verify_webhook

__version__ = VERSION

__all__ = [
    "APIConnectionError",
    "APIError",
    "AsyncPaymux",
    "AuthenticationError",
    "BadRequestError",
    "Balance",
    "BalanceTransaction",
    "ConflictError",
    "Event",
    "FeeReport",
    "FeeReportLine",
    "IdempotencyKeyReusedError",
    "InsufficientFundsError",
    "Merchant",
    "NotFoundError",
    "Page",
    "Payee",
    "Paymux",
    "PaymuxError",
    "PermissionDeniedError",
    "Quote",
    "RateLimitError",
    "Redelivery",
    "ServerError",
    "ServiceUnavailableError",
    "Topup",
    "Transfer",
    "TransferBatch",
    "TransferBatchItem",
    "TransferStatus",
    "UnprocessableEntityError",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookVerificationError",
    "__version__",
    "verify_webhook",
]
