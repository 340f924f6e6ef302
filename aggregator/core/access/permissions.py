from rest_framework import permissions

from aggregator.core.access.roles import ADMIN, WRITE_ROLES, roles_of


class OperatorRolePermission(permissions.BasePermission):
    """Analysts read; operators read and write; only admins delete.

    A view can demand more for writes by setting `write_roles`.
    """

    message = "Your role does not allow this."

    def has_permission(self, request, view):
        roles = roles_of(request.user)
        if not roles:
            self.message = "An operator role (admin, operator or analyst) is required."
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        if request.method == "DELETE":
            return ADMIN in roles
        return bool(roles & getattr(view, "write_roles", WRITE_ROLES))
