"""The permission catalogue (CONTRACT section 3): defined here once, read everywhere else.

The admin form's checkboxes, the API's permission checks, the docs and the audit all import
`Permission`; a token has exactly the permissions ticked for it, nothing implied.
"""

from django.db import models


class Category(models.TextChoices):
    USER_MANAGEMENT = "user_management", "User Management"
    PRODUCT_AND_LICENSE_MANAGEMENT = "product_license_management", "Product & License Management"
    GROUP_MANAGEMENT = "group_management", "Group Management"
    INTEGRATIONS = "integrations", "Integrations"


class Permission(models.TextChoices):
    VIEW_USERS = "view_users", "View Users"
    CREATE_USERS = "create_users", "Create Users"
    EDIT_USERS = "edit_users", "Edit Users"
    DELETE_USERS = "delete_users", "Delete Users"
    EDIT_USER_TOKENS = "edit_user_tokens", "Edit User Tokens"
    VIEW_PRODUCTS = "view_products", "View Products"
    EDIT_PRODUCTS = "edit_products", "Edit Products"
    VIEW_LICENSES = "view_licenses", "View Licenses"
    EDIT_LICENSES = "edit_licenses", "Edit Licenses"
    VIEW_CUSTOMERS = "view_customers", "View Customers"
    CREATE_GROUPS = "create_groups", "Create Groups"
    EDIT_GROUPS = "edit_groups", "Edit Groups"
    DELETE_GROUPS = "delete_groups", "Delete Groups"
    VIEW_WEBHOOKS = "view_webhooks", "View Webhooks"
    EDIT_WEBHOOKS = "edit_webhooks", "Edit Webhooks"

    @property
    def category(self) -> "Category":
        return CATEGORY_OF[self]


CATEGORY_OF: dict[Permission, Category] = {
    Permission.VIEW_USERS: Category.USER_MANAGEMENT,
    Permission.CREATE_USERS: Category.USER_MANAGEMENT,
    Permission.EDIT_USERS: Category.USER_MANAGEMENT,
    Permission.DELETE_USERS: Category.USER_MANAGEMENT,
    Permission.EDIT_USER_TOKENS: Category.USER_MANAGEMENT,
    Permission.VIEW_PRODUCTS: Category.PRODUCT_AND_LICENSE_MANAGEMENT,
    Permission.EDIT_PRODUCTS: Category.PRODUCT_AND_LICENSE_MANAGEMENT,
    Permission.VIEW_LICENSES: Category.PRODUCT_AND_LICENSE_MANAGEMENT,
    Permission.EDIT_LICENSES: Category.PRODUCT_AND_LICENSE_MANAGEMENT,
    Permission.VIEW_CUSTOMERS: Category.PRODUCT_AND_LICENSE_MANAGEMENT,
    Permission.CREATE_GROUPS: Category.GROUP_MANAGEMENT,
    Permission.EDIT_GROUPS: Category.GROUP_MANAGEMENT,
    Permission.DELETE_GROUPS: Category.GROUP_MANAGEMENT,
    Permission.VIEW_WEBHOOKS: Category.INTEGRATIONS,
    Permission.EDIT_WEBHOOKS: Category.INTEGRATIONS,
}

ALL_PERMISSIONS: frozenset[str] = frozenset(Permission.values)


def grouped_by_category() -> list[tuple[Category, list[Permission]]]:
    """The catalogue in display order, grouped by category (for forms and docs)."""
    return [
        (category, [p for p in Permission if CATEGORY_OF[p] is category]) for category in Category
    ]


class Preset(models.TextChoices):
    """Common use cases offered by the admin add form; each ticks boxes the admin can still change."""

    READ_ONLY = "read_only", "Read-only integration"
    LICENSE_PROVISIONING = "license_provisioning", "License provisioning"
    USER_ONBOARDING = "user_onboarding", "User onboarding"
    MONITORING = "monitoring", "Monitoring and analytics"


PRESET_PERMISSIONS: dict[Preset, tuple[Permission, ...]] = {
    Preset.READ_ONLY: (Permission.VIEW_USERS, Permission.VIEW_LICENSES, Permission.VIEW_PRODUCTS),
    Preset.LICENSE_PROVISIONING: (
        Permission.VIEW_USERS,
        Permission.VIEW_LICENSES,
        Permission.VIEW_CUSTOMERS,
        Permission.EDIT_LICENSES,
    ),
    Preset.USER_ONBOARDING: (
        Permission.VIEW_USERS,
        Permission.CREATE_USERS,
        Permission.VIEW_PRODUCTS,
    ),
    Preset.MONITORING: (Permission.VIEW_USERS, Permission.VIEW_LICENSES, Permission.VIEW_PRODUCTS),
}
