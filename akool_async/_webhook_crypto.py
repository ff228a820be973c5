"""AKOOL webhook crypto: verify and decrypt a delivery, or build one (akool-api.md §8).

A delivery is JSON ``{"signature", "dataEncrypt", "timestamp", "nonce"}``. ``verify_webhook``
checks it in a fixed order (shape, signature in constant time, freshness, then decryption and
parsing) and returns a typed ``WebhookEvent``; ``build_envelope`` is the encrypt direction, used
by the fake server and by users' tests.

Note on AKOOL's scheme: the SHA-1 signature covers only values a third party may know (the
client id is not secret), so it detects corruption, not forgery. Authenticity rests on
``dataEncrypt`` decrypting with the client secret into a well-formed event (valid padding,
UTF-8 JSON, an ``_id`` and a status 1-4), so those checks stay strict; only ``type``, which
nothing routes on, may be anything. AES-CBC without a MAC is open to padding-oracle attacks if a
receiver reveals *which* check failed: receivers must answer every failure identically and keep
the messages for their logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any, Final

import attrs
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ._constants import VIDEO_RETENTION_SECONDS
from ._convert import read_status
from ._errors import AkoolValueError, WebhookVerificationError
from ._models import VideoStatus

__all__ = ["DEFAULT_WEBHOOK_TOLERANCE", "WebhookEvent", "build_envelope", "verify_webhook"]

#: Seven days, as long as AKOOL keeps a video. AKOOL retries a delivery until it gets HTTP 200
#: and does not document whether a retry is re-signed, so a retry may carry the original
#: timestamp however late it comes: any shorter window could reject AKOOL's own retries (a
#: receiver down for a day would lose every webhook of that day). A replayed envelope can only
#: re-deliver news the receiver handles idempotently anyway (dedupe; a status never goes
#: back), and nothing older than the videos themselves is accepted.
DEFAULT_WEBHOOK_TOLERANCE: Final[float] = float(VIDEO_RETENTION_SECONDS)

_AES_BLOCK_BYTES: Final = 16
_AES_KEY_LENGTHS: Final = frozenset({16, 24, 32})
# Timestamps must fit a signed 64-bit integer: what any sender's clock type holds, and small
# enough that converting to seconds can never overflow a float.
_MAX_TIMESTAMP_MS: Final = 2**63 - 1
# ASCII digits only: str.isdigit() and int() also accept other scripts' digits and "+", " ".
_DIGITS: Final = re.compile(r"[0-9]{1,19}")


@attrs.frozen(kw_only=True)
class WebhookEvent:
    """One verified, decrypted webhook delivery.

    Attributes:
        id: the video's ``_id``; route on this, never on ``type``.
        status: the video's status at delivery time (sent as an int or a numeric string).
        type: AKOOL's undocumented event type, as sent (a string, a number, anything):
            route on ``id``, never on this.
        url: the video URL (set when ``status`` is COMPLETED).
        timestamp: the envelope's timestamp, epoch milliseconds.
        nonce: the envelope's nonce, as a string.
        raw: the whole decrypted plaintext, unknown keys included.
    """

    id: str
    status: VideoStatus
    # Any JSON value may come: keep it in equality but out of the generated __hash__.
    type: object = attrs.field(hash=False)
    url: str | None
    timestamp: int
    nonce: str
    # A dict is unhashable: keep it in equality but out of the generated __hash__.
    raw: Mapping[str, Any] = attrs.field(hash=False)


def verify_webhook(
    body: bytes | str | Mapping[str, Any],
    *,
    client_id: str,
    client_secret: str,
    tolerance: float | None = DEFAULT_WEBHOOK_TOLERANCE,
    now: float | None = None,
) -> WebhookEvent:
    """Verify, decrypt and parse one AKOOL webhook delivery.

    Args:
        body: the request body as received (bytes or str of JSON), or the already parsed object.
        client_id: the account's clientId.
        client_secret: the account's clientSecret (the API key); 16, 24 or 32 bytes of UTF-8.
        tolerance: how many seconds the envelope's timestamp may be from ``now``, either way;
            ``None`` skips the freshness check.
        now: the current time in epoch seconds; defaults to ``time.time()``.

    Returns:
        The decrypted event.

    Raises:
        WebhookVerificationError: any check failed; the message names the check only.
        AkoolValueError: ``tolerance`` or ``now`` is not a usable number.
    """
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
        raise AkoolValueError("tolerance must be a finite number of seconds >= 0, or None")
    if now is not None and not math.isfinite(now):
        raise AkoolValueError("now must be a finite epoch time in seconds")

    envelope = _parse_body(body)
    signature, data_encrypt, timestamp_str, timestamp, nonce_str = _envelope_fields(envelope)

    # Nothing else in the envelope is trusted until the signature matches.
    expected = _signature(client_id, timestamp_str, nonce_str, data_encrypt)
    if expected is None:
        raise _fail("client_id or an envelope field is not encodable as UTF-8")
    # Bytes on both sides: compare_digest refuses non-ASCII str, and "surrogatepass" makes any
    # str encodable, so a hostile signature can only mismatch, never raise.
    if not hmac.compare_digest(
        expected.encode("ascii"), signature.encode("utf-8", "surrogatepass")
    ):
        raise _fail("signature mismatch")

    if tolerance is not None:
        current = time.time() if now is None else now
        if abs(timestamp / 1000 - current) > tolerance:
            raise _fail(f"timestamp is more than {tolerance:g}s away from now")

    keys = key_iv(client_id, client_secret)
    if keys is None:
        raise _fail("client_secret must be 16, 24 or 32 bytes as UTF-8")
    plaintext = _decrypt(data_encrypt, *keys)
    return _event(plaintext, timestamp=timestamp, nonce=nonce_str)


def build_envelope(
    payload: Mapping[str, Any],
    *,
    client_id: str,
    client_secret: str,
    timestamp: int | None = None,
    nonce: str | int | None = None,
) -> dict[str, Any]:
    """Encrypt and sign ``payload`` the way AKOOL does; the inverse of ``verify_webhook``.

    Args:
        payload: the plaintext event, e.g. ``{"_id": ..., "status": 3, "type": ..., "url": ...}``.
        client_id: the account's clientId.
        client_secret: the account's clientSecret; 16, 24 or 32 bytes of UTF-8.
        timestamp: epoch milliseconds; defaults to now.
        nonce: a string or an int (AKOOL sends both); defaults to a random digit string.

    Returns:
        ``{"signature", "dataEncrypt", "timestamp", "nonce"}``, ready for ``json.dumps``;
        ``timestamp`` and ``nonce`` keep the types they were given.

    Raises:
        AkoolValueError: bad key length, payload not JSON-serialisable, or a bad
            timestamp or nonce.
    """
    if timestamp is None:
        timestamp = int(time.time() * 1000)
    if isinstance(timestamp, bool) or not 0 <= timestamp <= _MAX_TIMESTAMP_MS:
        raise AkoolValueError("timestamp must be a non-negative int of epoch milliseconds")
    if nonce is None:
        nonce = f"{secrets.randbelow(10**12):012d}"
    if isinstance(nonce, bool):
        raise AkoolValueError("nonce must be a str or an int")
    keys = key_iv(client_id, client_secret)
    if keys is None:
        raise AkoolValueError("client_secret must be 16, 24 or 32 bytes as UTF-8")
    try:
        plaintext = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise AkoolValueError("payload is not JSON-serialisable") from exc

    padder = padding.PKCS7(_AES_BLOCK_BYTES * 8).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(keys[0]), modes.CBC(keys[1])).encryptor()
    data_encrypt = base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()

    signature = _signature(client_id, str(timestamp), str(nonce), data_encrypt)
    if signature is None:
        raise AkoolValueError("client_id and nonce must be encodable as UTF-8")
    return {
        "signature": signature,
        "dataEncrypt": data_encrypt,
        "timestamp": timestamp,
        "nonce": nonce,
    }


def _fail(check: str) -> WebhookVerificationError:
    return WebhookVerificationError(f"webhook verification failed: {check}")


def _parse_body(body: bytes | str | Mapping[str, Any]) -> Mapping[Any, Any]:
    if isinstance(body, Mapping):
        return body
    if isinstance(body, bytes | bytearray | memoryview | str):
        parsed = _loads(body)
        if isinstance(parsed, dict):
            return parsed
        raise _fail("body is not a JSON object")
    raise _fail("body must be bytes, str or a mapping")


_INVALID: Final = object()


def _loads(text: str | bytes | bytearray | memoryview) -> object:
    # Returns a sentinel rather than raising inside ``except``: JSONDecodeError and
    # UnicodeDecodeError carry the document, and raising outside the handler keeps them out of
    # ``__context__`` too, not just out of the printed traceback.
    try:
        return json.loads(bytes(text) if isinstance(text, memoryview) else text)
    except (ValueError, RecursionError):
        return _INVALID


def _envelope_fields(envelope: Mapping[Any, Any]) -> tuple[str, str, str, int, str]:
    """Check the envelope's shape; return signature, dataEncrypt, timestamp (str, int), nonce."""
    missing = [k for k in ("signature", "dataEncrypt", "timestamp", "nonce") if k not in envelope]
    if missing:
        raise _fail(f"missing field(s) {', '.join(missing)}")
    signature = envelope["signature"]
    data_encrypt = envelope["dataEncrypt"]
    raw_timestamp = envelope["timestamp"]
    raw_nonce = envelope["nonce"]
    if not isinstance(signature, str):
        raise _fail("signature is not a string")
    if not isinstance(data_encrypt, str):
        raise _fail("dataEncrypt is not a string")

    # bool is an int subclass, but True is no timestamp or nonce.
    if isinstance(raw_timestamp, int) and not isinstance(raw_timestamp, bool):
        timestamp = raw_timestamp
        if not 0 <= timestamp <= _MAX_TIMESTAMP_MS:
            raise _fail("timestamp is out of range")
        timestamp_str = str(timestamp)
    elif isinstance(raw_timestamp, str) and _DIGITS.fullmatch(raw_timestamp):
        # Signed as sent: keep the string (leading zeros and all) for the signature.
        timestamp_str = raw_timestamp
        timestamp = int(raw_timestamp)
        if timestamp > _MAX_TIMESTAMP_MS:
            raise _fail("timestamp is out of range")
    else:
        raise _fail("timestamp is not an integer or a string of digits")

    nonce_str: str | None
    if isinstance(raw_nonce, str):
        nonce_str = raw_nonce
    elif isinstance(raw_nonce, int) and not isinstance(raw_nonce, bool):
        try:
            nonce_str = str(raw_nonce)
        except ValueError:  # beyond sys.get_int_max_str_digits(): no sane nonce
            nonce_str = None
        if nonce_str is None:
            raise _fail("nonce is out of range")
    else:
        raise _fail("nonce is not a string or an integer")
    return signature, data_encrypt, timestamp_str, timestamp, nonce_str


def _signature(client_id: str, timestamp: str, nonce: str, data_encrypt: str) -> str | None:
    """Lowercase hex SHA-1 of the four strings sorted and concatenated; None if not UTF-8."""
    try:
        joined = "".join(sorted((client_id, timestamp, nonce, data_encrypt))).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from a JSON "\ud800" escape
        return None
    return hashlib.sha1(joined).hexdigest()


def key_iv(client_id: str, client_secret: str) -> tuple[bytes, bytes] | None:
    """AES key and CBC IV per §8, or None when the secret is not a valid AES key."""
    try:
        key = client_secret.encode("utf-8")
        client_id_bytes = client_id.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if len(key) not in _AES_KEY_LENGTHS:
        return None
    # IV = first 16 bytes of clientId, NUL-padded when shorter (akool-api.md §8).
    iv = client_id_bytes[:_AES_BLOCK_BYTES].ljust(_AES_BLOCK_BYTES, b"\0")
    return key, iv


def _decrypt(data_encrypt: str, key: bytes, iv: bytes) -> bytes:
    try:
        ciphertext: bytes | None = base64.b64decode(data_encrypt, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII str
        ciphertext = None
    if ciphertext is None:
        raise _fail("dataEncrypt is not valid Base64")
    if not ciphertext or len(ciphertext) % _AES_BLOCK_BYTES:
        raise _fail("dataEncrypt is not a whole number of AES blocks")

    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(_AES_BLOCK_BYTES * 8).unpadder()
    try:
        plaintext: bytes | None = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        plaintext = None
    if plaintext is None:
        raise _fail("decrypted data has invalid PKCS#7 padding (wrong secret or client_id?)")
    return plaintext


def _event(plaintext: bytes, *, timestamp: int, nonce: str) -> WebhookEvent:
    try:
        text: str | None = plaintext.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None:
        raise _fail("decrypted data is not UTF-8")
    data = _loads(text)
    if data is _INVALID:
        raise _fail("decrypted data is not JSON")
    if not isinstance(data, dict):
        raise _fail("decrypted data is not a JSON object")

    video_id = data.get("_id")
    if not isinstance(video_id, str) or not video_id:
        raise _fail("decrypted _id is missing or not a non-empty string")
    # An int or a string of digits; bool and float are not statuses.
    status = read_status(data.get("status"))
    if status is None:
        raise _fail("decrypted status is missing or not one of 1, 2, 3, 4")
    url = data.get("url")
    if url is not None and not isinstance(url, str):
        raise _fail("decrypted url is not a string")
    return WebhookEvent(
        id=video_id,
        status=status,
        type=data.get("type"),
        url=url,
        timestamp=timestamp,
        nonce=nonce,
        raw=data,
    )
