"""The API's token authentication: DRF's, with the token and its user read in one plain SQL statement.

DRF looks the key up with `Token.objects.select_related("user").get(key=key)`, and building that statement
took longer than running it, on every API call. Same answers: the user, or 401 "Invalid token." or
"User inactive or deleted."; a token deleted (revoked) stops working at once, nothing is cached.
"""

from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple:
        user_model = get_user_model()
        users, tokens = user_model._meta.db_table, Token._meta.db_table
        # Table names from the models' metadata, the key a parameter: nothing from the request in the SQL.
        sql = f"SELECT u.* FROM {users} u JOIN {tokens} t ON t.user_id = u.id WHERE t.key = %s"  # noqa: S608
        user = next(iter(user_model.objects.raw(sql, [key])), None)
        if user is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token = Token.from_db(user._state.db, ["key", "user_id"], [key, user.pk])
        Token.user.field.set_cached_value(token, user)
        return user, token
