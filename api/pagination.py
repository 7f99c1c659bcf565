"""Cursor pagination for every list: stable and fast at any depth, with a capped page size."""

from base64 import b64encode
from urllib import parse

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

    def paginate_rows(self, request, read) -> list[tuple]:
        """DRF's `paginate_queryset` for the `id` ordering, the page read by
        `read(position, reverse, offset, limit)`: rows (tuples, the id first) after `position`
        (before it if `reverse`; None: from the start), id descending if `reverse`, `offset` rows
        skipped, at most `limit`. The same page, positions and links as DRF's, without a queryset
        (tests/licensing/test_license_pages.py compares them)."""
        self.request = request
        self.page_size = self.get_page_size(request)
        self.base_url = request.build_absolute_uri()
        self.ordering = (self.ordering,) if isinstance(self.ordering, str) else self.ordering
        self.cursor = self.decode_cursor(request)
        if self.cursor is None:
            offset, reverse, current_position = 0, False, None
        else:
            offset, reverse, current_position = self.cursor
        position = None if current_position is None else int(current_position)
        results = read(position, reverse, offset, self.page_size + 1)
        self.page = results[: self.page_size]
        if len(results) > len(self.page):
            has_following_position = True
            following_position = str(results[-1][0])
        else:
            has_following_position = False
            following_position = None
        if reverse:
            self.page.reverse()
            self.has_next = current_position is not None or offset > 0
            self.has_previous = has_following_position
            if self.has_next:
                self.next_position = current_position
            if self.has_previous:
                self.previous_position = following_position
        else:
            self.has_next = has_following_position
            self.has_previous = current_position is not None or offset > 0
            if self.has_next:
                self.next_position = following_position
            if self.has_previous:
                self.previous_position = current_position
        if (self.has_previous or self.has_next) and self.template is not None:
            self.display_page_controls = True
        return self.page

    def _get_position_from_instance(self, instance, ordering):
        if isinstance(instance, tuple):  # a row of paginate_rows: its id first
            return str(instance[0])
        return super()._get_position_from_instance(instance, ordering)

    def encode_cursor(self, cursor):
        # DRF's encode_cursor and replace_query_param, the request's URL split once for both links.
        tokens = {}
        if cursor.offset != 0:
            tokens["o"] = str(cursor.offset)
        if cursor.reverse:
            tokens["r"] = "1"
        if cursor.position is not None:
            tokens["p"] = cursor.position
        encoded = b64encode(parse.urlencode(tokens, doseq=True).encode("ascii")).decode("ascii")
        split = getattr(self, "_split_url", None)
        if split is None or split[0] != self.base_url:
            scheme, netloc, path, query, fragment = parse.urlsplit(str(self.base_url))
            query_dict = parse.parse_qs(query, keep_blank_values=True)
            split = self._split_url = (self.base_url, scheme, netloc, path, query_dict, fragment)
        _, scheme, netloc, path, query_dict, fragment = split
        query_dict = {**query_dict, self.cursor_query_param: [encoded]}
        query = parse.urlencode(sorted(query_dict.items()), doseq=True)
        return parse.urlunsplit((scheme, netloc, path, query, fragment))

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
