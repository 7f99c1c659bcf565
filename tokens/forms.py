"""Admin forms for User Tokens: permissions as checkboxes grouped by category, with presets.

Everything shown here (codes, labels, groups, presets) is read from tokens.catalogue; nothing is
listed twice.
"""

import ipaddress
import re
from datetime import timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe

from tokens import services
from tokens.catalogue import PRESET_PERMISSIONS, Preset, grouped_by_category
from tokens.models import UserToken

VALIDATE_ENDPOINT = "POST /v1/licenses/validate"
MAX_NETWORKS = 100


def permission_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """Grouped choices: (category label, [(code, label), ...]) in catalogue order."""
    return [
        (category.label, [(p.value, p.label) for p in permissions])
        for category, permissions in grouped_by_category()
    ]


def presets() -> list[dict]:
    """The add form's preset buttons: their permission codes come from the catalogue."""
    return [
        {
            "value": preset.value,
            "label": preset.label,
            "codes": " ".join(p.value for p in PRESET_PERMISSIONS[preset]),
            "permission_labels": ", ".join(p.label for p in PRESET_PERMISSIONS[preset]),
        }
        for preset in Preset
    ]


class PermissionCheckboxes(forms.CheckboxSelectMultiple):
    """One checkbox per permission code, each category in its own fieldset-like group.

    Rendered with the project's template engine (templates/admin/tokens/widgets/), since the
    default form renderer does not look in the project's template folder.
    """

    template_name = "admin/tokens/widgets/permission_checkboxes.html"

    def __init__(self, *args, show_presets: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.show_presets = show_presets

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["presets"] = presets() if self.show_presets else []
        context["validate_endpoint"] = VALIDATE_ENDPOINT
        return context

    def render(self, name, value, attrs=None, renderer=None):
        return mark_safe(render_to_string(self.template_name, self.get_context(name, value, attrs)))  # noqa: S308 (template output, autoescaped)

    def use_required_attribute(self, initial):
        # Browsers would demand every box be ticked; "at least one" is checked on the server.
        return False


IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


def _unmapped(network: ipaddress.IPv6Network) -> ipaddress.IPv4Network:
    first = network.network_address.ipv4_mapped
    return ipaddress.ip_network(f"{first}/{network.prefixlen - 96}")


class NetworkListField(forms.Field):
    """CIDR networks (IPv4 or IPv6), one per line or comma-separated; stored in canonical form."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 40, "placeholder": "e.g. 203.0.113.0/24"})
    separators = re.compile(r"[\s,]+")

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return "\n".join(value)
        return value

    def to_python(self, value) -> list[str]:
        if isinstance(value, list | tuple):
            items = [str(item) for item in value]
        else:
            items = self.separators.split(value or "")
        items = [item.strip() for item in items if item.strip()]
        if len(items) > MAX_NETWORKS:
            raise ValidationError(f"At most {MAX_NETWORKS} networks can be listed.")
        networks, errors = [], []
        for item in items:
            try:
                network = ipaddress.ip_network(item, strict=True)
            except ValueError:
                try:
                    loose = ipaddress.ip_network(item, strict=False)
                except ValueError:
                    errors.append(
                        f"“{item[:60]}” is not an IPv4 or IPv6 address or CIDR network "
                        "(for example 203.0.113.0/24 or 2001:db8::/32)."
                    )
                else:
                    errors.append(f"“{item}” has host bits set; did you mean {loose}?")
                continue
            if network.version == 6 and network.subnet_of(IPV4_MAPPED):
                # Clients are matched by their IPv4 address (api.client_address), never mapped.
                errors.append(f"“{item}” is an IPv4-mapped range; list it as {_unmapped(network)}.")
                continue
            if str(network) not in networks:
                networks.append(str(network))
        if errors:
            raise ValidationError(errors)
        return networks


class OwnerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        detail = obj.get_full_name() or obj.email
        return f"{obj.get_username()} ({detail})" if detail else obj.get_username()


EXPIRY_PRESET_DAYS = {"7": 7, "30": 30, "90": 90}
EXPIRY_CHOICES = [
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("custom", "Custom date (below)"),
    ("never", "Never"),
]


class UserTokenForm(forms.ModelForm):
    """The change form: name, permissions, expiry and networks. Saving goes through the services
    (see UserTokenAdmin.save_model), never through form.save(). `actor`, the administrator
    filling it in, is set by the admin (UserTokenAdmin.get_form)."""

    actor = None

    permissions = forms.MultipleChoiceField(
        choices=permission_choices,
        widget=PermissionCheckboxes,
        error_messages={"required": "Tick at least one permission."},
        help_text="The token gets exactly the permissions ticked here, nothing implied.",
    )
    allowed_ips = NetworkListField(
        required=False,
        label="Allowed networks",
        help_text=(
            "Optional. IPv4 or IPv6 addresses or CIDR networks, one per line or comma-separated "
            "(e.g. 203.0.113.0/24, 2001:db8::/32). When set, requests from any other address "
            "are refused. Leave empty to allow any address."
        ),
    )

    expiry_preset = forms.ChoiceField(
        choices=EXPIRY_CHOICES,
        required=False,  # a post without it keeps the plain expires_at meaning (empty = never)
        widget=forms.RadioSelect,
        label="Expires",
        help_text="From now. Custom date: the date and time below (UTC).",
    )

    class Meta:
        model = UserToken
        fields = ["name", "permissions", "expires_at", "allowed_ips"]
        help_texts = {
            "expires_at": (
                "With “Custom date”: the token stops working at this time (time-bounded "
                "access). Times are in UTC."
            ),
        }

    class Media:
        js = ["tokens/expiry.js"]  # a typed expiry date selects "Custom date"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "expiry_preset" in self.fields:
            self.fields["expiry_preset"].initial = self.initial_expiry_preset()

    def initial_expiry_preset(self) -> str:
        return "custom" if self.instance.expires_at else "never"

    def clean(self):
        data = super().clean()
        preset = data.get("expiry_preset")
        if not preset or "expiry_preset" in self.errors or "expires_at" in self.errors:
            return data
        date = data.get("expires_at")
        if preset == "custom":
            if date is None:
                self.add_error("expires_at", "Enter the date and time for a custom expiry.")
            return data
        if date is not None:
            self.add_error(
                "expires_at",
                "A date is used only with “Custom date”: choose Custom date, or clear the date.",
            )
            return data
        if preset == "never":
            data["expires_at"] = None
        else:
            data["expires_at"] = timezone.now() + timedelta(days=EXPIRY_PRESET_DAYS[preset])
        return data

    def clean_permissions(self):
        # Only what the administrator may grant (a new token held nothing before).
        permissions = self.cleaned_data["permissions"]
        try:
            services.check_admin_change(
                self.actor, before=self.instance.permissions, after=permissions
            )
        except PermissionDenied as refused:
            raise ValidationError(str(refused)) from None
        return permissions


class UserTokenAddForm(UserTokenForm):
    """The add form: also the owner (field `user`) and the presets."""

    user = OwnerChoiceField(
        queryset=get_user_model().objects.none(),
        label="User",
        help_text=(
            "The owner: requests made with this token act as this user. Only active users are "
            "listed (and, unless you are a superuser, no other administrator); deactivating the "
            "user stops the token too."
        ),
    )
    permissions = forms.MultipleChoiceField(
        choices=permission_choices,
        widget=PermissionCheckboxes(show_presets=True),
        error_messages={"required": "Tick at least one permission."},
        help_text=(
            "The token gets exactly the permissions ticked here, nothing implied. "
            "Grant only what the integration needs."
        ),
    )

    class Meta(UserTokenForm.Meta):
        fields = ["name", "user", "permissions", "expires_at", "allowed_ips"]

    def initial_expiry_preset(self) -> str:
        return "90"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A fresh queryset per form, evaluated in the schema of the request being served: the
        # active users of this tenant whose tokens the administrator may create.
        self.fields["user"].queryset = services.owners_manageable_by(self.actor)

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise ValidationError("The expiry must be in the future.")
        return expires_at

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("user") is not None:
            self.instance.owner = cleaned["user"]
        return cleaned
