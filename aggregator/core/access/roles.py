"""Operator roles. Each role is a Django group of the same name.

- admin: everything, including deleting records and managing operators;
- operator: runs programs: creates and edits records, moves enrollments through
  their lifecycle, issues and revokes device credentials, imports fleets;
- analyst: reads everything, changes nothing.
"""

from django.contrib.auth.models import Group

ADMIN = "admin"
OPERATOR = "operator"
ANALYST = "analyst"
ROLES = (ADMIN, OPERATOR, ANALYST)
WRITE_ROLES = frozenset({ADMIN, OPERATOR})


def roles_of(user) -> frozenset[str]:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, "_vpp_roles", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        if user.is_superuser:
            cached |= {ADMIN}
        user._vpp_roles = cached
    return cached


def ensure_role_groups() -> None:
    for role in ROLES:
        Group.objects.get_or_create(name=role)


def grant(user, role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    if hasattr(user, "_vpp_roles"):
        del user._vpp_roles
