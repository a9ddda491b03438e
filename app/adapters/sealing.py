"""Secrets sealed at rest: Fernet tokens (AES-128-CBC with HMAC-SHA256) under the keys of JOBS_SECRET_KEY,
a comma-separated list whose first key seals and whose every key opens, so keys can be rotated."""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.settings import MISSING_SECRET_KEY, Settings

# Migration 0005 marks the rows it found in plain text so; a process with a key seals them at start-up.
LEGACY_PREFIX = "plaintext:"


class SecretKeyError(RuntimeError):
    """JOBS_SECRET_KEY is missing, malformed, or cannot open a stored secret."""


def require_secret_key(settings: Settings) -> None:
    """Refuse a missing or malformed JOBS_SECRET_KEY, with a one-line message."""
    _fernet(settings.required_secret_key)


def generate_key() -> str:
    return Fernet.generate_key().decode()


def _fernet(keys: str) -> MultiFernet:
    entries = [entry.strip() for entry in keys.split(",") if entry.strip()]
    if not entries:
        raise SecretKeyError(MISSING_SECRET_KEY)
    fernets = []
    for number, entry in enumerate(entries, 1):
        try:
            fernets.append(Fernet(entry))
        except ValueError:  # binascii.Error is one
            raise SecretKeyError(
                f"JOBS_SECRET_KEY: key #{number} is not a Fernet key (32 url-safe base64-encoded bytes); "
                "make one with `jobs-service secrets generate-key`"
            ) from None
    return MultiFernet(fernets)


class Sealer:
    """Seals and opens secrets. Made without keys it refuses both, saying how to make a key: commands that
    never touch a secret (a rebuild, a migration) do not need one."""

    def __init__(self, keys: str | None) -> None:
        self._keys = _fernet(keys) if keys is not None else None

    def _fernets(self) -> MultiFernet:
        if self._keys is None:
            raise SecretKeyError(MISSING_SECRET_KEY)
        return self._keys

    def seal(self, secret: str) -> str:
        return self._fernets().encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        if sealed.startswith(LEGACY_PREFIX):
            raise SecretKeyError(
                "a stored secret is not sealed yet: start a role with JOBS_SECRET_KEY, "
                "or run `jobs-service secrets rotate`"
            )
        try:
            return self._fernets().decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(_CANNOT_OPEN) from None

    def reseal(self, sealed: str) -> str:
        """The secret sealed with the first key (a legacy plain-text value is sealed for the first time)."""
        if sealed.startswith(LEGACY_PREFIX):
            return self.seal(sealed.removeprefix(LEGACY_PREFIX))
        try:
            return self._fernets().rotate(sealed.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(_CANNOT_OPEN) from None


_CANNOT_OPEN = (
    "a stored secret cannot be opened with any key of JOBS_SECRET_KEY: it was sealed with a key not in the list "
    "(while rotating, keep the old key after the new one: JOBS_SECRET_KEY=new,old)"
)
