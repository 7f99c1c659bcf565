"""The admin in a real browser: headless Chromium creates a User Token, the API accepts it.

Needs Debian's `chromium` (/usr/bin/chromium) and the `playwright` package (the `test` extra);
skipped with the reason otherwise. `.ci/run` installs chromium. Never runs `playwright install`.
"""

import uuid
from contextlib import contextmanager

import pytest

from tests.browser import ARTIFACTS, launched, log_in
from tokens.catalogue import PRESET_PERMISSIONS, Preset

pytestmark = pytest.mark.browser

CHOSEN = ["delete_users", "edit_groups", "view_customers"]
ADD_PAGE = "/admin/tokens/usertoken/add/"


@pytest.fixture
def browser(chromium, live_tenant_server):
    with launched(chromium) as browser:
        yield browser


def ticked(page) -> list[str]:
    return sorted(
        page.eval_on_selector_all(
            "input[name=permissions]:checked", "boxes => boxes.map(box => box.value)"
        )
    )


@contextmanager
def add_form(browser, server, name: str):
    """The add form, signed in, with `name` and the server's owner filled in: (page, the page's
    script errors)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        log_in(page, server, ADD_PAGE)
        page.fill("#id_name", name)
        page.select_option("#id_user", value=str(server.owner_id))
        yield page, errors
    finally:
        context.close()


def test_admin_creates_a_token_in_the_browser_and_the_api_accepts_it(
    chromium, live_tenant_server, browser
):
    server = live_tenant_server
    with add_form(browser, server, "Made in a browser") as (page, errors):
        # A preset ticks exactly its boxes (its codes come from the catalogue); the admin can
        # still change them.
        page.click(f"button[data-preset={Preset.LICENSE_PROVISIONING.value}]")
        assert ticked(page) == sorted(
            p.value for p in PRESET_PERMISSIONS[Preset.LICENSE_PROVISIONING]
        )
        assert (
            page.get_attribute(
                f"button[data-preset={Preset.LICENSE_PROVISIONING.value}]", "aria-pressed"
            )
            == "true"
        )
        page.click("button[data-permissions-clear]")
        assert ticked(page) == []

        for code in CHOSEN:
            page.check(f"input[name=permissions][value={code}]")
        assert ticked(page) == CHOSEN
        assert "3 of 15 permissions ticked" in page.inner_text("[data-permission-count]")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "user-token-add-form.png"), full_page=True)

        page.click("input[name=_save]")
        page.wait_for_selector("#user-token-value")
        secret = page.inner_text("#user-token-value").strip()
        assert uuid.UUID(secret).version == 4
        assert "will not be shown again" in page.content()

        exchanged = server.request("POST", "/v1/auth/token", json={"user_token": secret})
        assert exchanged.status == 200, exchanged.text
        assert exchanged.json()["permissions"] == CHOSEN
        access = exchanged.json()["access_token"]
        me = server.request("GET", "/v1/auth/me", headers={"Authorization": f"Bearer {access}"})
        assert me.status == 200, me.text
        assert me.json()["permissions"] == CHOSEN

        # Once shown, never again: the token's own page has only the last four characters.
        page.click("#user-token-change-link")
        page.wait_for_selector("#usertoken_form")
        assert secret not in page.content()
        assert secret[-4:] in page.content()
        page.screenshot(path=str(ARTIFACTS / "user-token-change-page.png"), full_page=True)
        assert errors == []


def expiry_preset(page) -> str:
    return page.eval_on_selector("input[name=expiry_preset]:checked", "radio => radio.value")


def test_a_typed_expiry_date_selects_custom_and_saves(chromium, live_tenant_server, browser):
    with add_form(browser, live_tenant_server, "Expires on a date") as (page, errors):
        page.check("input[name=permissions][value=view_licenses]")
        assert expiry_preset(page) == "90"

        # The calendar's "Today" link sets the date without an input event: still custom.
        page.check("input[name=expiry_preset][value='30']")
        page.click("#id_expires_at_0 ~ .datetimeshortcuts a >> text=Today")
        assert expiry_preset(page) == "custom"
        page.fill("#id_expires_at_0", "")

        page.check("input[name=expiry_preset][value='7']")
        page.locator("#id_expires_at_0").press_sequentially("2099-06-30")
        assert expiry_preset(page) == "custom"
        page.fill("#id_expires_at_1", "12:30:00")

        # Choosing a day preset again keeps the date: the server refuses the pair, as without
        # the script.
        page.check("input[name=expiry_preset][value='7']")
        page.click("input[name=_save]")
        page.wait_for_selector(".errornote")
        assert "A date is used only with “Custom date”" in page.content()

        page.check("input[name=expiry_preset][value=custom]")
        page.click("input[name=_save]")
        page.wait_for_selector("#user-token-value")
        page.click("#user-token-change-link")
        page.wait_for_selector("#usertoken_form")
        assert expiry_preset(page) == "custom"
        assert page.input_value("#id_expires_at_0") == "2099-06-30"
        assert page.input_value("#id_expires_at_1") == "12:30:00"
        assert errors == []
