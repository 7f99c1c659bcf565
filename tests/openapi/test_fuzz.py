"""Schemathesis against a live server of a throw-away tenant, with every default check.

Pass 1 authenticates with a User Token holding every permission: no 5xx, every response
conforms to the schema (status, content type, headers, body), unknown methods answer 405, no
request is accepted without its token, valid data is accepted and invalid data refused. The
fuzzer may refresh or deactivate the very token it uses (it holds `edit_user_tokens`,
`delete_users`): the auth provider then exchanges the next token of a pool.

Pass 2 authenticates with a token holding no permission: every operation that needs one must
answer 401 or 403, nothing else.
"""

import json
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

# Imported before schemathesis' worker threads: hypothesis imports it lazily inside `randoms()`,
# and two threads doing that first import at once can see it half-initialised (ImportError).
import hypothesis.strategies._internal.random  # noqa: F401
import pytest
import schemathesis
from click.testing import CliRunner
from django.contrib.auth import get_user_model
from django.urls import Resolver404, resolve
from django_tenants.utils import schema_context
from schemathesis.auths import GLOBAL_AUTH_STORAGE
from schemathesis.checks import CHECKS
from schemathesis.cli.commands import schemathesis as schemathesis_cli

from api.permissions import required_for
from tests.openapi.conftest import FUZZ_SCHEMA
from tokens.catalogue import ALL_PERMISSIONS

pytestmark = pytest.mark.live

CONFIG = Path(__file__).with_name("schemathesis.toml")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
EXAMPLES_PER_OPERATION = 10
SEED = 20261129
WORKERS = "2"


def run_schemathesis(server, tmp_path: Path, *options: str) -> dict:
    """The schemathesis CLI, in this process (so auth providers and checks registered here
    apply); returns its JSON report, after printing its output."""
    schema = server.request("GET", "/v1/schema?format=json")
    assert schema.status == 200
    schema_path = tmp_path / "schema.json"
    schema_path.write_bytes(schema.content)
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        schemathesis_cli,
        [
            "--config-file", str(CONFIG),
            "run", str(schema_path),
            "--url", server.address_url,
            "--header", f"Host: {server.host_header}",
            "--checks", "all",
            "--max-examples", str(EXAMPLES_PER_OPERATION),
            "--seed", str(SEED),
            "--workers", WORKERS,
            "--report", "json", "--report-json-path", str(report),
            *options,
        ],
        catch_exceptions=False,
    )  # fmt: skip
    print(result.output)
    assert result.exit_code == 0, "schemathesis found problems, see its output above"
    return json.loads(report.read_text())


@contextmanager
def registered_auth(provider_class):
    schemathesis.auth(refresh_interval=600, retry_on=[401])(provider_class)
    try:
        yield
    finally:
        GLOBAL_AUTH_STORAGE.unregister()


@contextmanager
def registered_check(check):
    schemathesis.check(check)
    try:
        yield
    finally:
        CHECKS.unregister(check.__name__)


@pytest.fixture
def token_pool(fuzz_target, django_db_blocker):
    """Secrets of User Tokens with every permission, each of its own owner, for pass 1."""
    from tokens.services import create_user_token

    User = get_user_model()
    secrets = []
    with django_db_blocker.unblock(), schema_context(FUZZ_SCHEMA):
        for number in range(60):
            owner = User.objects.create_user(f"fuzz-owner-{number}", email="owner@fuzz.localhost")
            _, secret = create_user_token(
                owner=owner, name=f"fuzz pool {number}", permissions=sorted(ALL_PERMISSIONS)
            )
            secrets.append(secret)
    return [fuzz_target.all_permissions_secret, *secrets]


@pytest.fixture(autouse=True)
def many_failures_allowed(settings):
    """The fuzzer checks that every request without its token answers 401, hundreds of times from
    one address: the abuse throttle would answer 429 (as documented) long before."""
    settings.ABUSE_FAILURE_RATE = "100000/m"


def test_pass_1_every_permission(fuzz_target, token_pool, tmp_path):
    server = fuzz_target.server
    pool = list(token_pool)
    exchanged = []

    class PooledToken:
        """The next User Token of the pool that the server still accepts, exchanged."""

        def get(self, case, context):
            while pool:
                response = server.request("POST", "/v1/auth/token", json={"user_token": pool[0]})
                if response.status == 200:
                    exchanged.append(pool[0])
                    return response.json()["access_token"]
                if response.status == 429:  # the fuzzer's wrong secrets slowed this address
                    time.sleep(min(float(response.headers.get("Retry-After", 1)), 60))
                    continue
                pool.pop(0)  # refreshed, deactivated or its owner removed by the fuzzer
            raise RuntimeError("the fuzzer used up every token of the pool")

        def set(self, case, data, context):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    with registered_auth(PooledToken):
        report = run_schemathesis(server, tmp_path)
    print(
        f"re-authenticated {report['auth']['reauth_count']} times; pool tokens used: {len(set(exchanged))}"
    )
    summarise("pass 1 (every permission)", report)


def protected(method: str, path: str) -> bool | None:
    """Whether the view that `method path` reaches requires a permission (read from the view
    itself, not from the schema); None when no view of that method is reached at all (an id that
    is not a number, a method the route does not have: 404 and 405 come before authorization)."""
    try:
        match = resolve(urlsplit(path).path, urlconf="config.urls")
    except Resolver404:
        return None
    view_class = getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)
    if view_class is None:
        return None  # the JSON 404 of an unknown route
    view = view_class()
    actions = getattr(match.func, "actions", None)
    if actions is not None:
        if method.lower() not in actions:
            return None
        view.action = actions[method.lower()]
    elif not hasattr(view, method.lower()):
        return None
    if not view.get_authenticators():
        return False
    return bool(required_for(view, method.upper()))


def test_pass_2_no_permission(fuzz_target, tmp_path, django_db_blocker):
    from tokens.services import create_user_token

    server = fuzz_target.server
    with django_db_blocker.unblock(), schema_context(FUZZ_SCHEMA):
        owner = get_user_model().objects.create_user("fuzz-no-permission", email="n@fuzz.localhost")
        _, secret = create_user_token(owner=owner, name="fuzz: no permission", permissions=[])
    response = server.request("POST", "/v1/auth/token", json={"user_token": secret})
    assert response.status == 200, response.content
    token = response.json()["access_token"]

    def only_refusals_without_permission(ctx, response, case):
        """An operation that needs a permission answers 401 or 403 to a token without any."""
        if protected(case.method, case.formatted_path) and response.status_code not in (401, 403):
            raise AssertionError(
                f"{case.method} {case.operation.path} answered {response.status_code} to a token "
                "without permissions"
            )

    with registered_check(only_refusals_without_permission):
        report = run_schemathesis(
            server,
            tmp_path,
            "--header",
            f"Authorization: Bearer {token}",
            "--phases",
            "fuzzing",
        )
    summarise("pass 2 (no permission)", report)


def summarise(label: str, report: dict) -> None:
    """One line per pass, printed and kept in test-artifacts/schemathesis.txt (for CI's notes)."""
    operations, cases = report["operations"], report["test_cases"]
    phases = ", ".join(
        name for name, phase in report["phases"].items() if phase["status"] != "skip"
    )
    line = (
        f"schemathesis {label}: {operations['tested']} of {operations['total']} operations, "
        f"{cases['generated']} test cases ({phases}), {cases['unique_failures']} failures, "
        f"{report['running_time']:.0f}s"
    )
    print(line)
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "schemathesis.txt", "a") as summary:
        summary.write(line + "\n")
