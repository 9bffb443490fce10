"""Staff-only pages and endpoints: anonymous users go to the login page (401 in the API), signed-in
non-staff get a 403 that says why."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from rest_framework.permissions import IsAdminUser

STAFF_ONLY = "This is for staff (admins) only. Ask an admin if you need access."


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied(STAFF_ONLY)
        return view(request, *args, **kwargs)

    return wrapped


class IsStaff(IsAdminUser):
    message = STAFF_ONLY
