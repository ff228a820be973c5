"""Webhook edges that mutation testing found unpinned (issue 15), through the public API.

A fixed known-answer envelope (computed here with hashlib and cryptography per akool-api.md
§8, and pinned as literals), the extremes of timestamps and tolerance, hostile inputs that
must fail as ``WebhookVerificationError`` and never as another exception (a receiver would
answer 500 for those, a distinguishable failure), and the exact message of every check.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from akool_async import (
    AkoolClient,
    AkoolValueError,
    VideoStatus,
    WebhookVerificationError,
    verify_webhook,
)
from akool_async.testing import sign_webhook

CLIENT_ID = "kat-client-id"  # 13 bytes: the IV is NUL-padded
SECRET = "0123456789abcdef01234567"  # 24 bytes: AES-192
TIMESTAMP = 1_760_000_000_123
NONCE = "428571"
PAYLOAD = {
    "_id": "66a1f0c2e4b0a1b2c3d4e5f6",
    "status": 3,
    "type": "image2video",
    "url": "https://cdn.example/v.mp4",
}
#: The known answer for the inputs above.
KAT_DATA_ENCRYPT = (
    "l4D0JdK2SQ81cBOQrIg4h5He4Yk/RODJbK84Apd6IMTwPf1Mezb0cZmqfmycOdJCIHuvADKXP7yOaozagUHDvk3A"
    "zZ0fJLOIXa1jlz5QCglgUfVsRVY82CgLdMOWFISfQjeY9UYN/S/aAoMrSPJwyg=="
)
KAT_SIGNATURE = "000da792679968de5d0af816f3b00bf0fdfb4c55"
PREFIX = "webhook verification failed: "
MAX_MS = 2**63 - 1


def independent_encrypt(plaintext: bytes, *, pad: bool = True) -> str:
    """§8 dataEncrypt, with cryptography directly: AES-CBC, key = secret, IV = client id."""
    if pad:
        padder = padding.PKCS7(128).padder()
        plaintext = padder.update(plaintext) + padder.finalize()
    iv = CLIENT_ID.encode()[:16].ljust(16, b"\0")
    encryptor = Cipher(algorithms.AES(SECRET.encode()), modes.CBC(iv)).encryptor()
    return base64.b64encode(encryptor.update(plaintext) + encryptor.finalize()).decode()


def independent_signature(timestamp: object, nonce: object, data_encrypt: str) -> str:
    """§8 signature: SHA-1 of the four strings sorted and concatenated."""
    parts = sorted([CLIENT_ID, str(timestamp), str(nonce), data_encrypt])
    return hashlib.sha1("".join(parts).encode()).hexdigest()


def envelope(
    data_encrypt: str, timestamp: object = TIMESTAMP, nonce: object = NONCE
) -> dict[str, Any]:
    """A correctly signed envelope around any dataEncrypt."""
    return {
        "signature": independent_signature(timestamp, nonce, data_encrypt),
        "dataEncrypt": data_encrypt,
        "timestamp": timestamp,
        "nonce": nonce,
    }


def verify(body: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("tolerance", None)
    return verify_webhook(body, client_id=CLIENT_ID, client_secret=SECRET, **kwargs)


def test_the_known_answer_is_what_section_8_computes() -> None:
    """The pinned literals are the documented algorithm's output, not our builder's."""
    plaintext = json.dumps(PAYLOAD, separators=(",", ":")).encode()
    assert KAT_DATA_ENCRYPT == independent_encrypt(plaintext)
    assert KAT_SIGNATURE == independent_signature(TIMESTAMP, NONCE, KAT_DATA_ENCRYPT)


def test_sign_webhook_builds_the_known_answer() -> None:
    """Fixed inputs give exactly the known envelope (compact JSON, PKCS#7, AES-192-CBC)."""
    built = sign_webhook(
        PAYLOAD, client_id=CLIENT_ID, client_secret=SECRET, timestamp=TIMESTAMP, nonce=NONCE
    )
    assert {
        "signature": KAT_SIGNATURE,
        "dataEncrypt": KAT_DATA_ENCRYPT,
        "timestamp": TIMESTAMP,
        "nonce": NONCE,
    } == built


def test_verify_webhook_opens_the_known_answer() -> None:
    """The known envelope, as JSON text, verifies into the event it carries."""
    body = json.dumps(envelope(KAT_DATA_ENCRYPT))
    event = verify(body, tolerance=0, now=TIMESTAMP / 1000)
    assert (PAYLOAD["_id"], VideoStatus.COMPLETED, "image2video", PAYLOAD["url"]) == (
        event.id,
        event.status,
        event.type,
        event.url,
    )
    assert (TIMESTAMP, NONCE, PAYLOAD) == (event.timestamp, event.nonce, event.raw)


@pytest.mark.parametrize("timestamp", [0, MAX_MS, "0", str(MAX_MS), "00042"])
def test_extreme_timestamps_round_trip(timestamp: int | str) -> None:
    """0 and 2**63-1 ms are valid timestamps, as ints and as digit strings."""
    body = envelope(KAT_DATA_ENCRYPT, timestamp=timestamp)
    assert int(timestamp) == verify(body).timestamp
    if isinstance(timestamp, int):
        built = sign_webhook(
            PAYLOAD, client_id=CLIENT_ID, client_secret=SECRET, timestamp=timestamp, nonce=NONCE
        )
        assert timestamp == verify(built).timestamp


@pytest.mark.parametrize("timestamp", [-1, MAX_MS + 1, str(MAX_MS + 1)])
def test_timestamps_beyond_64_bits_are_out_of_range(timestamp: int | str) -> None:
    with pytest.raises(WebhookVerificationError) as caught:
        verify(envelope(KAT_DATA_ENCRYPT, timestamp=timestamp))
    assert PREFIX + "timestamp is out of range" == str(caught.value)


def test_timestamp_zero_is_fresh_at_epoch_zero() -> None:
    """tolerance=0 accepts a timestamp exactly equal to now, even at the epoch."""
    assert 0 == verify(envelope(KAT_DATA_ENCRYPT, timestamp=0), tolerance=0, now=0).timestamp


def test_tolerance_zero_and_fractions() -> None:
    """tolerance=0 means exactly now; a fraction of a second is a valid tolerance."""
    body = envelope(KAT_DATA_ENCRYPT)
    assert TIMESTAMP == verify(body, tolerance=0, now=TIMESTAMP / 1000).timestamp
    assert TIMESTAMP == verify(body, tolerance=0.5, now=TIMESTAMP / 1000 + 0.4).timestamp
    with pytest.raises(WebhookVerificationError) as caught:
        verify(body, tolerance=0, now=TIMESTAMP / 1000 + 0.001)
    assert PREFIX + "timestamp is more than 0s away from now" == str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tolerance": -1.0}, "tolerance must be a finite number of seconds >= 0, or None"),
        ({"tolerance": float("inf")}, "tolerance must be a finite number of seconds >= 0, or None"),
        ({"now": float("nan")}, "now must be a finite epoch time in seconds"),
    ],
)
def test_unusable_tolerance_or_now_messages(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(AkoolValueError) as caught:
        verify(envelope(KAT_DATA_ENCRYPT), **kwargs)
    assert message == str(caught.value)


def lone_surrogate_signature() -> str:
    """A JSON body whose signature is the escape of a lone surrogate, as a hostile sender
    might send it."""
    body = envelope(KAT_DATA_ENCRYPT)
    return json.dumps({**body, "signature": "@"}).replace('"@"', '"\\ud800"')


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lone_surrogate_signature(), id="json-text"),
        pytest.param(lone_surrogate_signature().encode(), id="json-bytes"),
        pytest.param({**envelope(KAT_DATA_ENCRYPT), "signature": "\ud800"}, id="mapping"),
        pytest.param({**envelope(KAT_DATA_ENCRYPT), "signature": "\udfff" * 40}, id="long"),
    ],
)
def test_a_lone_surrogate_signature_is_a_mismatch(body: Any) -> None:
    """Not a UnicodeEncodeError: the comparison must fail the same way as any bad signature."""
    with pytest.raises(WebhookVerificationError) as caught:
        verify(body)
    assert PREFIX + "signature mismatch" == str(caught.value)


@pytest.mark.parametrize("wrap", [memoryview, bytearray, bytes])
def test_binary_bodies_of_any_buffer_type_verify(wrap: Callable[[bytes], Any]) -> None:
    """A body handed over as memoryview or bytearray (as some frameworks give it) verifies."""
    body = wrap(json.dumps(envelope(KAT_DATA_ENCRYPT)).encode())
    assert PAYLOAD["_id"] == verify(body).id


@pytest.mark.parametrize("raw", [b"[1]", b"\xff\xfe", b"", b"{"])
def test_a_bad_memoryview_body_fails_verification(raw: bytes) -> None:
    """Not a TypeError from json.loads: a memoryview is read as the bytes it holds."""
    with pytest.raises(WebhookVerificationError) as caught:
        verify(memoryview(raw))
    assert PREFIX + "body is not a JSON object" == str(caught.value)


async def test_the_client_receiver_rejects_hostile_bodies_and_takes_memoryview() -> None:
    """client.webhooks.receive fails hostile bodies as WebhookVerificationError too."""
    async with AkoolClient(SECRET, client_id=CLIENT_ID, base_url="http://127.0.0.1:9") as client:
        with pytest.raises(WebhookVerificationError):
            await client.webhooks.receive(lone_surrogate_signature(), tolerance=None)
        with pytest.raises(WebhookVerificationError):
            await client.webhooks.receive(memoryview(b"[]"), tolerance=None)
        body = memoryview(json.dumps(envelope(KAT_DATA_ENCRYPT)).encode())
        event = await client.webhooks.receive(body, tolerance=None)
    assert PAYLOAD["_id"] == event.id


def plaintext_envelope(plaintext: bytes, *, pad: bool = True) -> dict[str, Any]:
    return envelope(independent_encrypt(plaintext, pad=pad))


_HUGE = 10**5000  # more digits than str(int) converts by default


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ("[]", "body is not a JSON object"),
        (42, "body must be bytes, str or a mapping"),
        ({"signature": "", "dataEncrypt": ""}, "missing field(s) timestamp, nonce"),
        ({**envelope("AA=="), "signature": 1}, "signature is not a string"),
        ({**envelope("AA=="), "dataEncrypt": 1}, "dataEncrypt is not a string"),
        (envelope("AA==", timestamp=1.5), "timestamp is not an integer or a string of digits"),
        ({**envelope("AA=="), "nonce": _HUGE}, "nonce is out of range"),
        (envelope("AA==", nonce=None), "nonce is not a string or an integer"),
        (
            {**envelope("AA=="), "nonce": "\ud800"},
            "client_id or an envelope field is not encodable as UTF-8",
        ),
        ({**envelope("AA=="), "signature": "0" * 40}, "signature mismatch"),
        (envelope("!!!!"), "dataEncrypt is not valid Base64"),
        (envelope("AAAAAA=="), "dataEncrypt is not a whole number of AES blocks"),
        (
            plaintext_envelope(b"0123456789abcde\0", pad=False),
            "decrypted data has invalid PKCS#7 padding (wrong secret or client_id?)",
        ),
        (plaintext_envelope(b"\xff\xfe"), "decrypted data is not UTF-8"),
        (plaintext_envelope(b"not json"), "decrypted data is not JSON"),
        (plaintext_envelope(b"[]"), "decrypted data is not a JSON object"),
        (
            plaintext_envelope(b'{"status": 3}'),
            "decrypted _id is missing or not a non-empty string",
        ),
        (
            plaintext_envelope(b'{"_id": "a", "status": 9}'),
            "decrypted status is missing or not one of 1, 2, 3, 4",
        ),
        (
            plaintext_envelope(b'{"_id": "a", "status": 3, "url": 5}'),
            "decrypted url is not a string",
        ),
    ],
)
def test_every_check_fails_with_its_own_message(body: Any, check: str) -> None:
    """The message names the failed check, exactly (receivers log it; it never leaks data)."""
    with pytest.raises(WebhookVerificationError) as caught:
        verify(body)
    assert PREFIX + check == str(caught.value)


def test_a_secret_of_the_wrong_length_fails_after_the_signature() -> None:
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(
            envelope(KAT_DATA_ENCRYPT), client_id=CLIENT_ID, client_secret="short", tolerance=None
        )
    assert PREFIX + "client_secret must be 16, 24 or 32 bytes as UTF-8" == str(caught.value)


def test_a_stale_delivery_names_the_default_window() -> None:
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(
            envelope(KAT_DATA_ENCRYPT),
            client_id=CLIENT_ID,
            client_secret=SECRET,
            now=TIMESTAMP / 1000 + 7 * 24 * 3600 + 1,
        )
    assert PREFIX + "timestamp is more than 604800s away from now" == str(caught.value)


@pytest.mark.parametrize(
    ("payload", "kwargs", "message"),
    [
        (PAYLOAD, {"timestamp": -1}, "timestamp must be a non-negative int of epoch milliseconds"),
        (
            PAYLOAD,
            {"timestamp": MAX_MS + 1},
            "timestamp must be a non-negative int of epoch milliseconds",
        ),
        (
            PAYLOAD,
            {"timestamp": True},
            "timestamp must be a non-negative int of epoch milliseconds",
        ),
        (PAYLOAD, {"nonce": True}, "nonce must be a str or an int"),
        (PAYLOAD, {"client_secret": "short"}, "client_secret must be 16, 24 or 32 bytes as UTF-8"),
        ({"x": object()}, {}, "payload is not JSON-serialisable"),
        ({"x": float("nan")}, {}, "payload is not JSON-serialisable"),
        (PAYLOAD, {"nonce": "\ud800"}, "client_id and nonce must be encodable as UTF-8"),
    ],
)
def test_sign_webhook_rejects_bad_input_with_its_message(
    payload: dict[str, Any], kwargs: dict[str, Any], message: str
) -> None:
    kwargs = {"client_id": CLIENT_ID, "client_secret": SECRET, **kwargs}
    with pytest.raises(AkoolValueError) as caught:
        sign_webhook(payload, **kwargs)
    assert message == str(caught.value)


def test_default_nonces_are_twelve_random_digits() -> None:
    """Without a nonce, each envelope gets twelve fresh ASCII digits (10**12 values)."""
    nonces = [
        sign_webhook(PAYLOAD, client_id=CLIENT_ID, client_secret=SECRET)["nonce"] for _ in range(50)
    ]
    assert all(re.fullmatch(r"[0-9]{12}", n) for n in nonces), nonces
    assert 50 == len(set(nonces))
