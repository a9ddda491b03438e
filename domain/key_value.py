"""The key-value store's rules (io.store.env/job/run and client.store in the trigger.dev v2 SDK).

The SDK namespaces a key itself: `job:<job id>:<key>` for io.store.job, `run:<run id>:<key>` for io.store.run,
the key alone for the environment's store; the environment is the caller's API key's. A value is the text the
SDK sends (its JSON serialization), kept as it came."""

from urllib.parse import unquote_to_bytes

MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 256 * 1024  # the SDK's own limit (MAX_BODY_BYTE_LENGTH), which trigger.dev enforced too


class BadKey(ValueError):
    pass


class BadValue(ValueError):
    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def parse_key(encoded: bytes) -> str:
    """A key as it arrives in the URL, percent-decoded (the SDK sends `encodeURIComponent(key)`)."""
    raw = unquote_to_bytes(encoded)
    try:
        key = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadKey("the key is not valid UTF-8 once percent-decoded") from None
    return check_key(key)


def check_key(key: str) -> str:
    if not key:
        raise BadKey("the key is empty")
    if "\x00" in key:
        raise BadKey("the key holds a NUL character")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise BadKey(f"the key is longer than {MAX_KEY_BYTES} bytes")
    return key


def check_value(body: bytes) -> str:
    if len(body) > MAX_VALUE_BYTES:
        raise BadValue(f"the value is larger than 256 KiB ({MAX_VALUE_BYTES} bytes)", too_large=True)
    try:
        value = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadValue("the value is not valid UTF-8") from None
    if "\x00" in value:
        raise BadValue("the value holds a NUL character")
    return value
