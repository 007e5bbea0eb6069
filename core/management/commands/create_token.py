"""``manage.py create_token USER``: create an API token and print its secret once."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from core.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for a user and print it (it is stored hashed and cannot be shown again)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="What the token is for.")
        parser.add_argument("--write", action="store_true", help="Allow writes (tokens are read-only by default).")
        parser.add_argument("--expires-days", type=int, default=90, help="Days until expiry; 0 for never.")

    def handle(self, *args, username, name, write, expires_days, **options):
        if expires_days < 0:
            raise CommandError("--expires-days must be 0 (never) or a positive number of days.")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        expires = timezone.now() + timedelta(days=expires_days) if expires_days else None
        token, secret = api_token_create(user=user, name=name, read_only=not write, expires=expires)
        self.stderr.write(
            f"Created {'read-write' if write else 'read-only'} token {token.name!r} for {username}, "
            f"expires {token.expires or 'never'}:"
        )
        self.stdout.write(secret)
