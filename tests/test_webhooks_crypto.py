"""Webhook crypto: verify_webhook and build_envelope against akool-api.md §8.

The helpers prefixed ``_independent`` implement §8 with hashlib and cryptography directly, so the
SDK is checked against the documented algorithm rather than against itself.
"""

# The house style is `assert expected == actual` (style.md), which SIM300 calls a Yoda condition.

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import event, given, settings
from hypothesis import strategies as st

from akool_async._errors import AkoolValueError, WebhookVerificationError
from akool_async._models import VideoStatus
from akool_async._webhook_crypto import (
    DEFAULT_WEBHOOK_TOLERANCE,
    WebhookEvent,
    build_envelope,
    verify_webhook,
)

# Distinctive values, so the leak test can search messages for them.
CLIENT_ID = "CLIENTID-zq7Wk2-longer-than-16"
SECRET = "SECRETKEY-x9Vb3Q"  # 16 bytes
NOW_MS = 1_760_000_000_000
NOW = NOW_MS / 1000
DAY = 86_400
PAYLOAD: dict[str, Any] = {
    "_id": "66a1f0c2e4b0a1b2c3d4e5f6",
    "status": 3,
    "type": "image2video",
    "url": "https://cdn.example/v.mp4",
    "extra": {"kept": True},
}


def _independent_signature(client_id: str, timestamp: object, nonce: object, data: str) -> str:
    parts = sorted([client_id, str(timestamp), str(nonce), data])
    return hashlib.sha1("".join(parts).encode("utf-8")).hexdigest()


def _independent_iv(client_id: str) -> bytes:
    return client_id.encode("utf-8")[:16].ljust(16, b"\0")


def _independent_encrypt(
    plaintext: bytes, *, client_id: str = CLIENT_ID, secret: str = SECRET, pad: bool = True
) -> str:
    if pad:
        n = 16 - len(plaintext) % 16
        plaintext += bytes([n]) * n
    cipher = Cipher(algorithms.AES(secret.encode("utf-8")), modes.CBC(_independent_iv(client_id)))
    encryptor = cipher.encryptor()
    return base64.b64encode(encryptor.update(plaintext) + encryptor.finalize()).decode("ascii")


def _independent_decrypt(data: str, *, client_id: str = CLIENT_ID, secret: str = SECRET) -> Any:
    cipher = Cipher(algorithms.AES(secret.encode("utf-8")), modes.CBC(_independent_iv(client_id)))
    decryptor = cipher.decryptor()
    padded = decryptor.update(base64.b64decode(data)) + decryptor.finalize()
    n = padded[-1]
    assert bytes([n]) * n == padded[-n:]
    return json.loads(padded[:-n].decode("utf-8"))


def _signed(
    data_encrypt: str,
    *,
    client_id: str = CLIENT_ID,
    timestamp: int | str = NOW_MS,
    nonce: int | str = "482913",
) -> dict[str, Any]:
    """An envelope with a correct signature over whatever ``data_encrypt`` is."""
    return {
        "signature": _independent_signature(client_id, timestamp, nonce, data_encrypt),
        "dataEncrypt": data_encrypt,
        "timestamp": timestamp,
        "nonce": nonce,
    }


def _independent_envelope(plaintext: bytes, **kwargs: Any) -> dict[str, Any]:
    client_id = kwargs.pop("client_id", CLIENT_ID)
    secret = kwargs.pop("secret", SECRET)
    pad = kwargs.pop("pad", True)
    data = _independent_encrypt(plaintext, client_id=client_id, secret=secret, pad=pad)
    return _signed(data, client_id=client_id, **kwargs)


def _verify(body: Any, **kwargs: Any) -> WebhookEvent:
    kwargs.setdefault("client_id", CLIENT_ID)
    kwargs.setdefault("client_secret", SECRET)
    kwargs.setdefault("now", NOW)
    return verify_webhook(body, **kwargs)


def _build(payload: dict[str, Any] = PAYLOAD, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("client_id", CLIENT_ID)
    kwargs.setdefault("client_secret", SECRET)
    kwargs.setdefault("timestamp", NOW_MS)
    kwargs.setdefault("nonce", "482913")
    return build_envelope(payload, **kwargs)


# --- round trips and interoperability -------------------------------------------------------


@pytest.mark.parametrize("nonce", ["482913", 482913], ids=["nonce-str", "nonce-int"])
@pytest.mark.parametrize(
    "encode",
    [
        lambda env: json.dumps(env).encode("utf-8"),
        json.dumps,
        lambda env: env,
    ],
    ids=["bytes", "str", "mapping"],
)
def test_round_trip_all_body_forms(encode: Callable[[dict[str, Any]], Any], nonce: Any) -> None:
    """build_envelope output verifies as bytes, str or mapping, with a str or int nonce."""
    envelope = _build(nonce=nonce)

    event = _verify(encode(envelope))

    expected = WebhookEvent(
        id=PAYLOAD["_id"],
        status=VideoStatus.COMPLETED,
        type="image2video",
        url="https://cdn.example/v.mp4",
        timestamp=NOW_MS,
        nonce="482913",
        raw=PAYLOAD,
    )
    assert expected == event


def test_event_optional_fields_absent() -> None:
    """type and url are None when the plaintext lacks them; status is a VideoStatus."""
    event = _verify(_build({"_id": "abc", "status": 2}))

    assert (None, None, VideoStatus.PROCESSING) == (event.type, event.url, event.status)
    assert isinstance(event.status, VideoStatus)


def test_event_is_hashable_and_frozen() -> None:
    """A WebhookEvent can go in a set (dedup of repeated deliveries) and cannot be mutated."""
    first = _verify(_build())
    again = _verify(_build())

    assert 1 == len({first, again})
    with pytest.raises(AttributeError):
        first.id = "other"  # type: ignore[misc]


def test_independent_envelope_verifies() -> None:
    """An envelope built from §8 with plain hashlib + cryptography verifies."""
    envelope = _independent_envelope(json.dumps(PAYLOAD).encode("utf-8"), nonce=77)

    event = _verify(json.dumps(envelope))

    assert (PAYLOAD["_id"], "77", PAYLOAD) == (event.id, event.nonce, dict(event.raw))


def test_build_envelope_decrypts_independently() -> None:
    """build_envelope's signature and ciphertext match an independent implementation of §8."""
    envelope = _build(nonce=99)

    assert {"signature", "dataEncrypt", "timestamp", "nonce"} == set(envelope)
    assert (NOW_MS, 99) == (envelope["timestamp"], envelope["nonce"])
    expected_signature = _independent_signature(CLIENT_ID, NOW_MS, 99, envelope["dataEncrypt"])
    assert expected_signature == envelope["signature"]
    assert PAYLOAD == _independent_decrypt(envelope["dataEncrypt"])


def test_build_envelope_defaults() -> None:
    """Default timestamp is now in epoch ms and default nonce a random digit string."""
    before = int(time.time() * 1000)
    first = build_envelope(PAYLOAD, client_id=CLIENT_ID, client_secret=SECRET)
    second = build_envelope(PAYLOAD, client_id=CLIENT_ID, client_secret=SECRET)
    after = int(time.time() * 1000)

    assert before <= first["timestamp"] <= after
    assert re.fullmatch(r"[0-9]+", first["nonce"])
    assert first["nonce"] != second["nonce"]
    # Default tolerance with the real clock: fresh envelopes pass.
    assert PAYLOAD["_id"] == verify_webhook(first, client_id=CLIENT_ID, client_secret=SECRET).id


def test_timestamp_as_numeric_string_is_signed_as_sent() -> None:
    """A string timestamp (leading zeros kept) is signed verbatim and parsed to an int."""
    plaintext = json.dumps(PAYLOAD).encode("utf-8")
    envelope = _independent_envelope(plaintext, timestamp="0" + str(NOW_MS))

    assert NOW_MS == _verify(envelope).timestamp


# --- tampering and wrong credentials -------------------------------------------------------


def _flip_hex(s: str) -> str:
    return ("1" if s[0] == "0" else "0") + s[1:]


def _other_ciphertext(data: str) -> str:
    raw = bytearray(base64.b64decode(data))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("field", "tamper"),
    [
        ("signature", _flip_hex),
        ("signature", str.upper),
        ("signature", lambda s: s[:-1]),
        ("dataEncrypt", _other_ciphertext),
        ("timestamp", lambda ts: ts + 1),
        ("nonce", lambda n: n + "0"),
        ("nonce", lambda n: " " + n),
    ],
)
def test_tampered_field_rejected(field: str, tamper: Callable[[Any], Any]) -> None:
    """Changing any signed field (or the signature) fails the signature check."""
    envelope = _build()
    envelope[field] = tamper(envelope[field])

    with pytest.raises(WebhookVerificationError, match="signature mismatch"):
        _verify(envelope)


def test_wrong_client_id_rejected() -> None:
    """A different client_id fails the signature check."""
    with pytest.raises(WebhookVerificationError, match="signature mismatch"):
        _verify(_build(), client_id=CLIENT_ID + "x")


def test_wrong_secret_rejected() -> None:
    """A different secret of a valid length fails decryption."""
    with pytest.raises(WebhookVerificationError, match="decrypted"):
        _verify(_build(), client_secret="another-secret-1")


# --- keys and IVs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    ["k" * 16, "k" * 24, "k" * 32, "é" * 8, "秘" * 8],
    ids=["16", "24", "32", "16-bytes-of-8-chars", "24-bytes-of-8-chars"],
)
def test_valid_key_lengths(secret: str) -> None:
    """16-, 24- and 32-byte secrets work, counted in UTF-8 bytes, not characters."""
    envelope = _independent_envelope(json.dumps(PAYLOAD).encode(), secret=secret)

    assert PAYLOAD == dict(_verify(envelope, client_secret=secret).raw)
    assert PAYLOAD == _independent_decrypt(
        _build(client_secret=secret)["dataEncrypt"], secret=secret
    )


@pytest.mark.parametrize(
    "secret",
    ["", "k" * 15, "k" * 20, "k" * 33, "é" * 16 + "k", "é" * 10, "bad\ud800" * 4],
    ids=["0", "15", "20", "33", "33-bytes-of-17-chars", "20-bytes-of-10-chars", "not-utf8"],
)
def test_invalid_key_lengths_rejected(secret: str) -> None:
    """Secrets that are not 16, 24 or 32 UTF-8 bytes are rejected in both directions."""
    with pytest.raises(WebhookVerificationError, match="16, 24 or 32 bytes"):
        _verify(_build(), client_secret=secret)
    with pytest.raises(AkoolValueError, match="16, 24 or 32 bytes"):
        _build(client_secret=secret)


@pytest.mark.parametrize(
    "client_id",
    ["abc", "exactly-16-bytes", CLIENT_ID, "客户端-ünïcode-ид-0123", "x"],
    ids=["short-nul-padded", "exact", "long-truncated", "non-ascii", "one-char"],
)
def test_client_id_iv_padding_and_truncation(client_id: str) -> None:
    """The IV is client_id's first 16 UTF-8 bytes, NUL-padded: both directions agree with §8."""
    envelope = _independent_envelope(json.dumps(PAYLOAD).encode(), client_id=client_id)

    assert PAYLOAD == dict(_verify(envelope, client_id=client_id).raw)
    built = _build(client_id=client_id)
    assert PAYLOAD == _independent_decrypt(built["dataEncrypt"], client_id=client_id)


def test_iv_uses_only_first_16_bytes() -> None:
    """Ciphertext depends on client_id only through its first 16 bytes."""
    a = _build(client_id="0123456789abcdef-A")
    b = _build(client_id="0123456789abcdef-B")

    assert a["dataEncrypt"] == b["dataEncrypt"]
    assert a["signature"] != b["signature"]


def test_client_id_with_lone_surrogate_rejected() -> None:
    """A client_id that cannot be UTF-8 encoded fails verification cleanly."""
    with pytest.raises(WebhookVerificationError, match="UTF-8"):
        _verify(_build(), client_id="id\ud800")


# --- freshness -----------------------------------------------------------------------------


@pytest.mark.parametrize("offset_s", [-7 * DAY - 1, 7 * DAY + 1, -30 * DAY, 30 * DAY])
def test_stale_and_future_timestamps_rejected_by_default(offset_s: int) -> None:
    """Timestamps more than seven days (as long as a video lives) from now are rejected."""
    envelope = _build(timestamp=NOW_MS + offset_s * 1000)

    with pytest.raises(WebhookVerificationError, match="timestamp"):
        _verify(envelope)
    assert PAYLOAD["_id"] == _verify(envelope, tolerance=None).id


@pytest.mark.parametrize("offset_s", [-7 * DAY + 1, -DAY, -601, 0, 599, 7 * DAY - 1])
def test_timestamps_within_tolerance_accepted(offset_s: int) -> None:
    """Inside the default window of seven days, a retry carrying its first timestamp verifies."""
    assert 7 * DAY == DEFAULT_WEBHOOK_TOLERANCE
    envelope = _build(timestamp=NOW_MS + offset_s * 1000)

    assert PAYLOAD["_id"] == _verify(envelope).id


def test_custom_tolerance_and_now() -> None:
    """tolerance and now are honoured; the default now is the real clock."""
    envelope = _build(timestamp=NOW_MS)

    assert PAYLOAD["_id"] == _verify(envelope, tolerance=5, now=NOW + 5).id
    with pytest.raises(WebhookVerificationError, match="timestamp"):
        _verify(envelope, tolerance=5, now=NOW + 5.5)
    with pytest.raises(WebhookVerificationError, match="timestamp"):
        verify_webhook(envelope, client_id=CLIENT_ID, client_secret=SECRET)  # 2025 is long ago


@pytest.mark.parametrize(
    "kwargs",
    [{"tolerance": -1}, {"tolerance": float("nan")}, {"now": float("inf")}],
)
def test_bad_tolerance_or_now_is_a_value_error(kwargs: dict[str, float]) -> None:
    """A nonsensical tolerance or now is a programming error, not a bad webhook."""
    with pytest.raises(AkoolValueError):
        _verify(_build(), **kwargs)


# --- malformed envelopes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "check"),
    [
        (b"not json", "not a JSON object"),
        (b"\xff\xfe\x00garbage", "not a JSON object"),
        ("[1, 2]", "not a JSON object"),
        ("null", "not a JSON object"),
        ("[" * 100_000, "not a JSON object"),
        ("1" * 5000, "not a JSON object"),
        (42, "bytes, str or a mapping"),
        ({}, "missing field"),
        ({"signature": "a", "dataEncrypt": "b", "timestamp": 1}, "missing field"),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "array",
        "null",
        "deep-nesting",
        "huge-int",
        "wrong-type",
        "empty",
        "no-nonce",
    ],
)
def test_malformed_body_rejected(body: Any, check: str) -> None:
    """Bodies that are not a JSON object with all four fields are rejected."""
    with pytest.raises(WebhookVerificationError, match=check):
        _verify(body)


@pytest.mark.parametrize(
    ("field", "value", "check"),
    [
        ("signature", None, "signature is not a string"),
        ("signature", 123, "signature is not a string"),
        ("dataEncrypt", b"abc", "dataEncrypt is not a string"),
        ("timestamp", 1.76e12, "timestamp is not"),
        ("timestamp", True, "timestamp is not"),
        ("timestamp", None, "timestamp is not"),
        ("timestamp", "", "timestamp is not"),
        ("timestamp", "-5", "timestamp is not"),
        ("timestamp", " 17", "timestamp is not"),
        ("timestamp", "1e12", "timestamp is not"),
        ("timestamp", "١٢٣", "timestamp is not"),  # Arabic-Indic digits: int() would accept
        ("timestamp", "9" * 19, "timestamp is out of range"),
        ("timestamp", "9" * 20, "timestamp is not"),
        ("timestamp", -1, "timestamp is out of range"),
        ("timestamp", 2**63, "timestamp is out of range"),
        ("nonce", None, "nonce is not"),
        ("nonce", False, "nonce is not"),
        ("nonce", 1.5, "nonce is not"),
        ("nonce", ["1"], "nonce is not"),
        pytest.param("nonce", 10**5000, "nonce is out of range", id="nonce-5000-digits"),
    ],
)
def test_field_types_checked(field: str, value: Any, check: str) -> None:
    """Each envelope field must have a sane type before anything else is looked at."""
    envelope = _build()
    envelope[field] = value

    with pytest.raises(WebhookVerificationError, match=check):
        _verify(envelope)


# --- decryption and plaintext failures (all correctly signed) -------------------------------


def _signed_ciphertext(ciphertext: bytes) -> dict[str, Any]:
    return _signed(base64.b64encode(ciphertext).decode())


DECRYPT_FAILURES: list[tuple[str, dict[str, Any], str]] = [
    ("bad-base64-chars", _signed("not base64!!"), "Base64"),
    ("bad-base64-padding", _signed("QUJ"), "Base64"),
    ("base64-whitespace", _signed("QUJD\nREVG"), "Base64"),
    ("non-ascii-base64", _signed("QUJDé==="), "Base64"),
    ("empty-ciphertext", _signed(""), "AES blocks"),
    ("partial-block", _signed_ciphertext(b"x" * 15), "AES blocks"),
    # A block that decrypts to a last byte of 0x00 (never valid PKCS#7).
    (
        "bad-padding",
        _independent_envelope(b"PLAINTEXT-MARKER\x00" + b"\x00" * 15, pad=False),
        "padding",
    ),
    (
        "inconsistent-padding",
        _independent_envelope(b"PLAINTEXT-MARKER" + b"abcdefghijklmn\x02\x03", pad=False),
        "padding",
    ),
    ("not-utf8", _independent_envelope(b"\xffPLAINTEXT-MARKER"), "not UTF-8"),
    ("not-json", _independent_envelope(b"PLAINTEXT-MARKER not json"), "not JSON"),
    ("json-array", _independent_envelope(b'["PLAINTEXT-MARKER"]'), "not a JSON object"),
    ("json-string", _independent_envelope(b'"PLAINTEXT-MARKER"'), "not a JSON object"),
    ("missing-id", _independent_envelope(b'{"status": 3, "url": "PLAINTEXT-MARKER"}'), "_id"),
    ("int-id", _independent_envelope(b'{"_id": 5, "status": 3}'), "_id"),
    ("empty-id", _independent_envelope(b'{"_id": "", "status": 3}'), "_id"),
    ("missing-status", _independent_envelope(b'{"_id": "PLAINTEXT-MARKER"}'), "status"),
    ("status-0", _independent_envelope(b'{"_id": "a", "status": 0}'), "status"),
    ("status-5", _independent_envelope(b'{"_id": "a", "status": 5}'), "status"),
    ("status-word", _independent_envelope(b'{"_id": "a", "status": "three"}'), "status"),
    ("status-str-5", _independent_envelope(b'{"_id": "a", "status": "5"}'), "status"),
    ("status-bool", _independent_envelope(b'{"_id": "a", "status": true}'), "status"),
    ("status-float", _independent_envelope(b'{"_id": "a", "status": 3.0}'), "status"),
    ("status-null", _independent_envelope(b'{"_id": "a", "status": null}'), "status"),
    ("url-list", _independent_envelope(b'{"_id": "a", "status": 3, "url": ["u"]}'), "url"),
]


@pytest.mark.parametrize(
    ("envelope", "check"),
    [(env, check) for _, env, check in DECRYPT_FAILURES],
    ids=[name for name, _, _ in DECRYPT_FAILURES],
)
def test_decrypt_and_plaintext_failures(envelope: dict[str, Any], check: str) -> None:
    """A correctly signed envelope whose ciphertext or plaintext is bad is rejected."""
    with pytest.raises(WebhookVerificationError, match=check):
        _verify(envelope)


@pytest.mark.parametrize(
    ("plaintext", "status", "event_type"),
    [
        (b'{"_id": "a", "status": "3", "url": "u"}', VideoStatus.COMPLETED, None),
        (b'{"_id": "a", "status": "2", "type": 7}', VideoStatus.PROCESSING, 7),
        (b'{"_id": "a", "status": 4, "type": {"k": [1]}}', VideoStatus.FAILED, {"k": [1]}),
        (b'{"_id": "a", "status": 1, "type": null}', VideoStatus.QUEUEING, None),
    ],
)
def test_status_as_numeric_string_and_any_type_accepted(
    plaintext: bytes, status: VideoStatus, event_type: object
) -> None:
    """``status`` may be an int or a string of digits; ``type`` may be any JSON value."""
    verified = _verify(_independent_envelope(plaintext))
    assert (status, event_type) == (verified.status, verified.type)
    hash(verified)  # a dict type must not make the event unhashable


def test_unknown_plaintext_keys_kept() -> None:
    """Unknown plaintext keys survive in raw; null type and url are fine."""
    plaintext = {"_id": "a", "status": 4, "type": None, "url": None, "sub_type": 9}

    event = _verify(_build(plaintext))

    assert (plaintext, None, None) == (dict(event.raw), event.type, event.url)


# --- nothing secret leaks -------------------------------------------------------------------


def _all_failures() -> list[WebhookVerificationError]:
    good = _build()
    cases: list[tuple[Any, dict[str, Any]]] = [
        ({**good, "signature": _flip_hex(good["signature"])}, {}),
        (good, {"client_id": CLIENT_ID + "x"}),
        (good, {"client_secret": "another-secret-1"}),
        (good, {"client_secret": SECRET + "x"}),
        (good, {"now": NOW + 8 * DAY}),
        ({**good, "timestamp": "x"}, {}),
        ({**good, "nonce": None}, {}),
        (b"not json", {}),
        *((env, {}) for _, env, _ in DECRYPT_FAILURES),
    ]
    errors = []
    for body, kwargs in cases:
        with pytest.raises(WebhookVerificationError) as info:
            _verify(body, **kwargs)
        errors.append(info.value)
    return errors


def test_errors_never_contain_secrets_or_payload() -> None:
    """No message, repr or traceback holds the secret, client id, signature or plaintext."""
    signature = _build()["signature"]
    forbidden = [SECRET, CLIENT_ID, signature, "PLAINTEXT-MARKER", "482913"]

    errors = _all_failures()

    assert len(DECRYPT_FAILURES) + 8 == len(errors)
    for exc in errors:
        rendered = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        leaks = [(s, text) for s in forbidden for text in rendered if s in text]
        assert [] == leaks
        # Nothing chained either: a cause or context could carry the payload bytes.
        assert (None, None) == (exc.__cause__, exc.__context__)


# --- build_envelope input checks ------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "kwargs"),
    [
        ({"x": object()}, {}),
        ({"x": float("nan")}, {}),
        (PAYLOAD, {"nonce": True}),
        (PAYLOAD, {"timestamp": -1}),
        (PAYLOAD, {"timestamp": True}),
        (PAYLOAD, {"client_id": "\ud800"}),
    ],
    ids=["not-serialisable", "nan", "bool-nonce", "negative-ts", "bool-ts", "surrogate-id"],
)
def test_build_envelope_rejects_bad_input(payload: dict[str, Any], kwargs: dict[str, Any]) -> None:
    """build_envelope raises AkoolValueError on input it cannot encode faithfully."""
    with pytest.raises(AkoolValueError):
        _build(payload, **kwargs)


# --- fuzzing: only WebhookVerificationError, ever -------------------------------------------

_any_text = st.text(st.characters(exclude_categories=[])) | st.text(
    st.characters(categories=["Cs"]), min_size=1
)
_json_scalar = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | _any_text
    | st.from_regex(r"\A[0-9]{0,25}\Z")
)
_json_value = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_any_text, inner, max_size=3),
    max_leaves=8,
)
_envelope_key = st.sampled_from(["signature", "dataEncrypt", "timestamp", "nonce"]) | _any_text
_fuzz = settings(max_examples=300, deadline=None)


def _only_verification_errors(body: Any, **kwargs: Any) -> None:
    with contextlib.suppress(WebhookVerificationError):
        _verify(body, **kwargs)


@_fuzz
@given(st.binary())
def test_fuzz_arbitrary_bytes(body: bytes) -> None:
    """Arbitrary bytes never raise anything but WebhookVerificationError."""
    with pytest.raises(WebhookVerificationError):
        _verify(body)


@_fuzz
@given(_any_text)
def test_fuzz_arbitrary_text(body: str) -> None:
    """Arbitrary text (lone surrogates included) never raises anything else."""
    _only_verification_errors(body)


@_fuzz
@given(st.dictionaries(_envelope_key, _json_value | st.binary(), max_size=6))
def test_fuzz_envelope_shaped_mappings(envelope: dict[Any, Any]) -> None:
    """Dicts with the envelope's keys and random value types, as mapping and as JSON."""
    with pytest.raises(WebhookVerificationError):
        _verify(envelope)
    try:
        text = json.dumps(envelope)
    except TypeError:  # bytes values only exist on the mapping path
        return
    with pytest.raises(WebhookVerificationError):
        _verify(text)


@_fuzz
@given(
    ciphertext=st.binary(max_size=80),
    timestamp=st.integers(min_value=0, max_value=2**63 - 1) | st.from_regex(r"\A[0-9]{1,19}\Z"),
    nonce=st.text() | st.integers(),
    secret=st.sampled_from([SECRET, "k" * 24, "k" * 32]) | _any_text,
)
def test_fuzz_signed_random_ciphertext(
    ciphertext: bytes, timestamp: int | str, nonce: str | int, secret: str
) -> None:
    """Correctly signed envelopes over random ciphertext fail only with WebhookVerificationError."""
    envelope = _signed(base64.b64encode(ciphertext).decode(), timestamp=timestamp, nonce=nonce)

    with pytest.raises(WebhookVerificationError):
        _verify(envelope, client_secret=secret, tolerance=None)


@_fuzz
@given(
    # Mostly well-typed fields, so that successful verifications come up as well as failures.
    plaintext=st.fixed_dictionaries(
        {},
        optional={
            "_id": st.text(min_size=1) | _any_text | _json_value,
            "status": st.integers(0, 5) | st.integers(1, 4) | _json_value,
            "type": st.none() | _any_text | _json_value,
            "url": st.none() | _any_text | _json_value,
        },
    ).flatmap(lambda d: st.dictionaries(_any_text, _json_value, max_size=2).map(lambda e: e | d))
)
def test_fuzz_encrypted_random_plaintext(plaintext: dict[str, Any]) -> None:
    """Random plaintext objects either verify consistently or raise WebhookVerificationError."""
    # ensure_ascii (the default) escapes lone surrogates, so any generated text encodes.
    body = json.dumps(plaintext).encode("ascii")
    envelope = _independent_envelope(body)
    # Compare with what the JSON says: a generated "\ud800\udc00" pair decodes as one character.
    decoded = json.loads(body)

    try:
        verified = _verify(envelope)
    except WebhookVerificationError:
        event("rejected")
        return
    event("verified")
    expected = (decoded["_id"], int(decoded["status"]), decoded.get("type"), decoded.get("url"))
    assert expected == (verified.id, verified.status, verified.type, verified.url)
