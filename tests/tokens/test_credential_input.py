"""The exchange and refresh views read their credential without the serializer when it is a plain
string: the same value as the serializer's, and the serializer's 400 for anything else."""

import pytest
from rest_framework.exceptions import ValidationError

from tokens.api.views import TokenExchangeView, TokenRefreshView

INPUTS = [
    {"user_token": "abc"},
    {"user_token": "  padded\t\n"},
    {"user_token": ""},
    {"user_token": "   "},
    {"user_token": "x" * 200},
    {"user_token": " " + "x" * 200 + " "},
    {"user_token": "x" * 201},
    {"user_token": "nul\x00inside"},
    {"user_token": "ünïcode"},
    {"user_token": "\ud800"},
    {"user_token": None},
    {"user_token": 12345},
    {"user_token": 1.5},
    {"user_token": True},
    {"user_token": ["a"]},
    {"user_token": {"a": 1}},
    {"other": "abc"},
    {"user_token": "abc", "extra": 1},
    {},
    ["user_token"],
    "user_token",
    None,
]


def outcome(view_class, data):
    try:
        return "value", view_class().credential(data)
    except ValidationError as error:
        return "400", error.detail


def serializer_outcome(view_class, data):
    serializer = view_class.serializer_class(data=data)
    if serializer.is_valid():
        return "value", serializer.validated_data[view_class.field]
    return "400", serializer.errors


@pytest.mark.parametrize("data", INPUTS, ids=repr)
def test_the_exchange_reads_what_its_serializer_reads(data):
    assert outcome(TokenExchangeView, data) == serializer_outcome(TokenExchangeView, data)


@pytest.mark.parametrize(
    "data",
    [
        {"refresh_token": "a.b.c"},
        {"refresh_token": " a.b.c "},
        {"refresh_token": "x" * 4096},
        {"refresh_token": "x" * 4097},
        {"refresh_token": ""},
        {"refresh_token": 7},
        {"user_token": "a.b.c"},
    ],
    ids=repr,
)
def test_the_refresh_reads_what_its_serializer_reads(data):
    assert outcome(TokenRefreshView, data) == serializer_outcome(TokenRefreshView, data)
