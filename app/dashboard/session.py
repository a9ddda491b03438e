"""The dashboard's cookies: a signed session (the environment's id, a fingerprint of its key, an expiry; never the
key itself) and a CSRF nonce whose HMAC every form carries (a signed double-submit token).

Both are signed with a key derived from JOBS_SECRET_KEY by HMAC, so the dashboard needs no setting of its own;
a process without JOBS_SECRET_KEY signs with a random key of its own (its sessions end when it does)."""

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from uuid import UUID

SESSION_COOKIE = "jobs_dash_session"
CSRF_COOKIE = "jobs_dash_csrf"
CSRF_FIELD = "csrf_token"
SESSION_SECONDS = 12 * 3600
_PURPOSE = b"jobs-service dashboard session v1"


@dataclass(frozen=True, slots=True)
class Session:
    environment_id: UUID
    key_fingerprint: str  # an HMAC of the key's hash: rotating or revoking the key ends the session
    expires_at: int


class Sessions:
    """Signs and reads the dashboard's cookies."""

    def __init__(self, secret_key: str | None) -> None:
        keys = [k.strip() for k in (secret_key or "").split(",") if k.strip()] or [secrets.token_urlsafe(32)]
        # The first key signs, every key verifies: rotating JOBS_SECRET_KEY (new,old) keeps sessions.
        self._keys = [hmac.new(key.encode(), _PURPOSE, hashlib.sha256).digest() for key in keys]

    def _sign(self, data: bytes, key: bytes | None = None) -> str:
        return base64.urlsafe_b64encode(hmac.new(key or self._keys[0], data, hashlib.sha256).digest()).decode()

    def _verified(self, data: bytes, signature: str) -> bool:
        return any(hmac.compare_digest(self._sign(data, key), signature) for key in self._keys)

    def fingerprint(self, api_key_hash: str) -> str:
        return self._sign(b"key:" + api_key_hash.encode())[:22]

    def encode(self, environment_id: UUID, api_key_hash: str, now: float | None = None) -> str:
        expires_at = int(now if now is not None else time.time()) + SESSION_SECONDS
        body = json.dumps({"e": str(environment_id), "k": self.fingerprint(api_key_hash), "x": expires_at})
        data = base64.urlsafe_b64encode(body.encode()).decode()
        return f"{data}.{self._sign(data.encode())}"

    def decode(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie holds, when its signature is ours and it has not expired."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 1000:
            return None
        data, signature = cookie.split(".")
        if not self._verified(data.encode(), signature):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(data.encode()))
            session = Session(UUID(body["e"]), str(body["k"]), int(body["x"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires_at > (now if now is not None else time.time()) else None

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(24)

    def csrf_token(self, nonce: str) -> str:
        return self._sign(b"csrf:" + nonce.encode())

    def csrf_valid(self, nonce: str | None, token: str | None) -> bool:
        return bool(nonce and token) and self._verified(b"csrf:" + str(nonce).encode(), str(token))
