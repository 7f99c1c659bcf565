"""The permission catalogue is the single source: the README's table follows it word for word."""

import re
from pathlib import Path

from tokens.catalogue import CATEGORY_OF, PRESET_PERMISSIONS, Permission, Preset

README = Path(__file__).resolve().parents[2] / "README.md"

CONTRACT_TABLE = [
    ("view_users", "View Users", "User Management"),
    ("create_users", "Create Users", "User Management"),
    ("edit_users", "Edit Users", "User Management"),
    ("delete_users", "Delete Users", "User Management"),
    ("edit_user_tokens", "Edit User Tokens", "User Management"),
    ("view_products", "View Products", "Product & License Management"),
    ("edit_products", "Edit Products", "Product & License Management"),
    ("view_licenses", "View Licenses", "Product & License Management"),
    ("edit_licenses", "Edit Licenses", "Product & License Management"),
    ("view_customers", "View Customers", "Product & License Management"),
    ("create_groups", "Create Groups", "Group Management"),
    ("edit_groups", "Edit Groups", "Group Management"),
    ("delete_groups", "Delete Groups", "Group Management"),
    # Added by issue 15 (webhooks), beyond the contract's table.
    ("view_webhooks", "View Webhooks", "Integrations"),
    ("edit_webhooks", "Edit Webhooks", "Integrations"),
]


def catalogue_rows():
    return [(p.value, p.label, CATEGORY_OF[p].label) for p in Permission]


def test_catalogue_is_exactly_the_contracts():
    assert catalogue_rows() == CONTRACT_TABLE


def test_readme_table_follows_the_catalogue():
    rows = re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \| ([^|]+) \|$", README.read_text(), re.M)
    assert [(code, label.strip(), cat.strip()) for code, label, cat in rows] == catalogue_rows()


def test_presets_are_the_contracts_use_cases():
    as_codes = {preset: sorted(PRESET_PERMISSIONS[preset]) for preset in Preset}
    assert as_codes == {
        Preset.READ_ONLY: ["view_licenses", "view_products", "view_users"],
        Preset.LICENSE_PROVISIONING: [
            "edit_licenses",
            "view_customers",
            "view_licenses",
            "view_users",
        ],
        Preset.USER_ONBOARDING: ["create_users", "view_products", "view_users"],
        Preset.MONITORING: ["view_licenses", "view_products", "view_users"],
    }
