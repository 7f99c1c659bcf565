"""GET /v1/licenses reads its page with a statement of its own and DRF's cursor logic
(licensing.api.views.license_page_statement, api.pagination.paginate_rows): every answer, its
rows, order, next/previous URLs, 400s and 404s, is the bytes of the ORM, LicenseSerializer and
DRF's CursorPagination, on many filter and cursor combinations."""

import zoneinfo
from base64 import b64encode
from datetime import datetime
from itertools import product
from urllib.parse import urlencode, urlsplit

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.pagination import CursorPagination

from api.pagination import ApiCursorPagination
from api.timestamps import UTC, use_utc_text_timestamps
from licensing.api.serializers import (
    LicenseSerializer,
    _sortable_utc_text,
    iso_datetime,
    license_answers,
    utc_text_as_drf,
)
from licensing.api.views import LicenseViewSet, license_page_statement
from licensing.models import License
from tests.licensing.factories import (
    make_customer,
    make_license,
    make_plan,
    make_user,
    set_license_dates,
)
from tokens.catalogue import Permission as P

pytestmark = pytest.mark.django_db


class DrfCursorPagination(ApiCursorPagination):
    """The project's pagination as it was: DRF's own cursor encoding and positions."""

    encode_cursor = CursorPagination.encode_cursor
    _get_position_from_instance = CursorPagination._get_position_from_instance


def orm_list_page(self):
    """The list as DRF and the ORM answer it: a queryset, DRF's paginate_queryset, the
    serializer."""
    self._paginator = DrfCursorPagination()
    page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
    return self.get_paginated_response(LicenseSerializer(page, many=True).data)


def cursor(**tokens) -> str:
    return b64encode(urlencode(tokens).encode()).decode()


@pytest.fixture
def licences(in_alpha):
    plans = [make_plan(), make_plan()]
    customer, user = make_customer(), make_user()
    made = []
    for i in range(14):
        licence = make_license(
            plans[i % 2],
            customer=customer if i % 3 == 0 else None,
            user=user if i % 4 == 1 else None,
            status=("active", "suspended", "revoked")[i % 5 % 3],
            metadata={"i": i, "tags": ["x"] * (i % 3)},
        )
        expires = (None, 30, -3)[i % 3]
        set_license_dates(licence, starts_in_days=-10, expires_in_days=expires)
        made.append(licence)
    return {"plans": plans, "customer": customer, "user": user, "ids": [m.pk for m in made]}


def both(client, monkeypatch, path):
    """(the answer now, the answer of the ORM and DRF's path) to `path`."""
    now = client.get(path)
    with monkeypatch.context() as patched:
        patched.setattr(LicenseViewSet, "list_page", orm_list_page)
        before = client.get(path)
    return now, before


def assert_same(client, monkeypatch, path):
    now, before = both(client, monkeypatch, path)
    assert now.status_code == before.status_code, path
    assert now.content == before.content, path
    return now


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_pages_and_links_are_the_orm_and_drfs(api_client, licences, monkeypatch):
    client = api_client("alpha", [P.VIEW_LICENSES])
    ids = licences["ids"]
    filters = [
        "",
        "status=active",
        "expired=true",
        "status=suspended",
        "expired=false",
        f"product={licences['plans'][0].product_id}",
        f"customer={licences['customer'].pk}",
        f"user={licences['user'].pk}",
        f"status=active&expired=false&product={licences['plans'][1].product_id}",
        "product=999999",  # an empty list
    ]
    positions = [None, ids[0] - 1, ids[0], ids[6], ids[-2], ids[-1], ids[-1] + 100, "007", 2**70]
    cursors = [None]
    for position, reverse, offset in product(positions, (False, True), (0, 2)):
        tokens = {"o": offset} if offset else {}
        if reverse:
            tokens["r"] = 1
        if position is not None:
            tokens["p"] = position
        if tokens:
            cursors.append(cursor(**tokens))
    combinations = [(query, None, limit) for query in filters for limit in (None, 1, 3)]
    combinations += [
        (query, encoded, 3) for query in [*filters[::2], filters[-1]] for encoded in cursors
    ]
    combinations += [("status=suspended", encoded, 1) for encoded in cursors]
    for query, encoded, limit in combinations:
        params = [query] if query else []
        if encoded:
            params.append(urlencode({"cursor": encoded}))
        if limit:
            params.append(f"limit={limit}")
        assert_same(client, monkeypatch, "/v1/licenses?" + "&".join(params))


def test_following_links_both_ways(api_client, licences, monkeypatch):
    client = api_client("alpha", [P.VIEW_LICENSES])
    for query in ("limit=3", "limit=4&status=active", "limit=2&expired=false&zeta=1&alpha=2"):
        path, seen = f"/v1/licenses?{query}", []
        while path:  # forwards to the last page, then back to the first
            body = assert_same(client, monkeypatch, path).json()
            seen.append(path)
            path = local(body["next"]) if body["next"] else None
        path = local(body["previous"]) if body["previous"] else None
        while path:
            body = assert_same(client, monkeypatch, path).json()
            path = local(body["previous"]) if body["previous"] else None
        assert len(seen) > 1


@pytest.mark.parametrize(
    "query",
    [
        "cursor=garbage",
        f"cursor={cursor(p='abc')}",
        f"cursor={cursor(p='')}",
        f"cursor={cursor(o=-1)}",
        f"cursor={cursor(o=5000)}",
        f"cursor={cursor(r='x')}",
        "limit=0",
        "limit=abc",
        "limit=100000",
        "status=expired",
        "expired=maybe&product=abc",
        "product=0&cursor=garbage",
        "limit=abc&cursor=garbage",
    ],
)
def test_bad_input_answers_the_same(api_client, licences, monkeypatch, query):
    client = api_client("alpha", [P.VIEW_LICENSES])
    assert_same(client, monkeypatch, f"/v1/licenses?{query}")


MOMENTS = [
    datetime(2026, 12, 1, 18, 11, 13, tzinfo=UTC),
    datetime(2026, 12, 1, 18, 11, 13, 900000, tzinfo=UTC),
    datetime(2026, 12, 1, 18, 11, 13, 120000, tzinfo=UTC),
    datetime(2026, 12, 1, 18, 11, 13, 7, tzinfo=UTC),
    datetime(2026, 12, 1, 18, 11, 13, 999999, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=UTC),
    datetime(99, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


def test_postgresqls_utc_text_is_drfs(in_alpha):
    """The page's times loaded as PostgreSQL's text (a UTC session) present as DRF's do, and
    compare (expired) as the instants do."""
    with connection.cursor() as cursor:
        assert use_utc_text_timestamps(cursor, UTC)
        cursor.execute(
            "SELECT moment FROM unnest(%s::timestamptz[]) AS moment ORDER BY moment", [MOMENTS]
        )
        texts = [text for (text,) in cursor.fetchall()]
    ordered = sorted(MOMENTS)
    assert [utc_text_as_drf(text) for text in texts] == [iso_datetime(m, UTC) for m in ordered]
    assert [_sortable_utc_text(text) for text in texts] == sorted(map(_sortable_utc_text, texts))
    assert utc_text_as_drf(None) is None


def test_both_ways_of_reading_a_page_answer_the_same(licences):
    """Times as text (UTC) or as datetimes (any other zone, or session): the same answers."""
    sql, params = license_page_statement({}, None, False, 0, 100)
    pages = []
    for zone in (UTC, timezone.get_fixed_timezone(0)):
        with connection.cursor() as cursor:
            utc_text = use_utc_text_timestamps(cursor, zone)
            cursor.execute(sql, params)
            pages.append(license_answers(cursor.fetchall(), zone, utc_text=utc_text))
    assert len(pages[0]) == 14
    assert pages[0] == [{**answer} for answer in pages[1]]
    assert [a["expired"] for a in pages[0]] == [(None, 30, -3)[i % 3] == -3 for i in range(14)]
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    with connection.cursor() as cursor:
        assert not use_utc_text_timestamps(cursor, paris)
        cursor.execute(sql, params)
        answers = license_answers(cursor.fetchall(), paris)
    licence = License.objects.get(pk=answers[0]["id"])
    with timezone.override(paris):
        assert answers[0] == dict(LicenseSerializer(licence).data)
