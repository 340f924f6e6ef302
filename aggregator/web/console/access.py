"""Who may see the console: a login and an operator role; writing (a POST) needs a write role."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

from aggregator.core.access.roles import WRITE_ROLES, roles_of


def operator_page(*, write: bool = False):
    def decorate(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            roles = roles_of(request.user)
            if not roles or (write and request.method == "POST" and not roles & WRITE_ROLES):
                raise PermissionDenied
            request.can_write = bool(roles & WRITE_ROLES)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
