"""The REST server: the Store over HTTP (``/api/v1/...``), one route per public Store operation.

``create_app(url, project=...)`` is the FastAPI application (for an ASGI server of your own);
``serve(url, project=..., host=..., port=...)`` runs it on uvicorn, as ``rolloutdb serve`` does. ``ROUTES`` is
the route table: each route's Store call and how its arguments travel (see ``Operation``), from which the remote
client (``rolloutdb.client``) is made."""

from ._app import API_PREFIX, create_app
from ._artifacts import CONTENT_PATH, UPLOAD_PATH
from ._errors import STATUS, invalid_request_message
from ._events import ERROR_TOPIC, HEARTBEAT_SECONDS
from ._operations import (PREFER_MINIMAL, TYPED_FILTERS, Operation, Page, RecordFields, read_batch_times,
                          read_times, time_fields)
from ._projects import CREATE_HEADER, PROJECT_HEADER
from ._routes import MAX_WAIT_SECONDS, ROUTES
from ._serve import is_loopback, serve

__all__ = ["API_PREFIX", "CONTENT_PATH", "CREATE_HEADER", "ERROR_TOPIC", "HEARTBEAT_SECONDS", "MAX_WAIT_SECONDS",
           "Operation", "PREFER_MINIMAL", "PROJECT_HEADER", "Page", "ROUTES", "RecordFields", "STATUS", "TYPED_FILTERS",
           "UPLOAD_PATH", "create_app", "invalid_request_message", "is_loopback", "read_batch_times",
           "read_times", "serve", "time_fields"]
