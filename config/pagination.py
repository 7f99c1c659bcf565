"""Cursor pagination for every list: stable and fast at any depth, with a capped page size."""

from django.conf import settings
from rest_framework.pagination import CursorPagination


class ApiCursorPagination(CursorPagination):
    """`{"results": [...], "next": url|null, "previous": url|null}`, ordered by id.

    `?limit=N` chooses the page size, capped at API_MAX_PAGE_SIZE; the cursor is opaque.
    """

    ordering = "id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = settings.API_MAX_PAGE_SIZE
