"""The REST server: the Store over HTTP (``/api/v1/...``), one route per public Store operation.

``create_app(url, project=...)`` is the FastAPI application (for an ASGI server of your own);
``serve(url, project=..., host=..., port=...)`` runs it on uvicorn, as ``rolloutdb serve`` does. ``ROUTES`` is
the route table: each route's Store call and how its arguments travel (see ``Operation``)."""

from ._app import API_PREFIX, create_app
from ._errors import STATUS
from ._operations import Operation, Page
from ._routes import ROUTES
from ._serve import is_loopback, serve

__all__ = ["API_PREFIX", "Operation", "Page", "ROUTES", "STATUS", "create_app", "is_loopback", "serve"]
