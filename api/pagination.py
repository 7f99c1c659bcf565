"""Cursor pagination for every list: stable and fast at any depth, with a capped page size."""

from django.conf import settings
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class ApiCursorPagination(CursorPagination):
    """`{"results": [...], "next": url|null, "previous": url|null}`, ordered by id.

    `?limit=N` chooses the page size, capped at API_MAX_PAGE_SIZE; the cursor is opaque.
    """

    ordering = "id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = settings.API_MAX_PAGE_SIZE

    def get_page_size(self, request):
        # DRF ignores a malformed `limit`; here it is bad input like any other (400).
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
            raise ValidationError({self.page_size_query_param: ["A whole number, at least 1."]})
        return min(int(raw), self.max_page_size)

    def decode_cursor(self, request):
        # DRF checks the offset and direction of a cursor but not its position, which is compared
        # with the (integer) id: any other text would reach the database and fail there.
        cursor = super().decode_cursor(request)
        position = cursor.position if cursor is not None else None
        if position is not None and not (position.isascii() and position.isdigit()):
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
                parameter["description"] = (
                    f"Items per page (default {self.page_size}; more than "
                    f"{self.max_page_size} is served as {self.max_page_size})."
                )
        return parameters
