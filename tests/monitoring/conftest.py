"""Fixtures for the monitoring tests: a client address of its own per test (alert and abuse
counters are kept per address in a cache that may outlive the test)."""

import pytest

from tests.helpers import fresh_address


@pytest.fixture
def address():
    return fresh_address()
