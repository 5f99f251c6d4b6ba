#!/usr/bin/env python3
"""Test vectors for the ticket token, format 1 (docs/ticket-token.md).

An implementation of the format that shares no code with gated's: Base45,
the byte layout, the holder hash and the verification algorithm are written
here from the standard; Ed25519 signatures come from the `cryptography`
package (OpenSSL), and the malformed signatures (identity R, small-order
keys, S >= L, Ed25519ctx/ph) are built by hand with the curve arithmetic
below. So a bug in gated's encoder cannot become the standard.

    scripts/token-vectors.py generate    write tests/vectors/ticket-token-v1-conformance.json
    scripts/token-vectors.py check       the file is exactly what `generate` writes
    scripts/token-vectors.py table       every vector as a table (name, expected result, token)
    scripts/token-vectors.py explain N   one vector decoded byte by byte (markdown)

`generate` and `check` run in a venv under target/vectors-venv, made on
first use (pip install cryptography from PyPI); `table` needs only Python.
Everything is deterministic: fixed keys, fixed seeds, fixed times.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "vectors" / "ticket-token-v1-conformance.json"
OLD = ROOT / "tests" / "vectors" / "ticket-token-v1.json"
VENV = ROOT / "target" / "vectors-venv"
REQUIREMENT = "cryptography==50.0.2"


# --- the venv (only for generate/check) ------------------------------------


def ensure_venv(argv: list[str]) -> None:
    """Re-runs this script with the venv's Python, making the venv first."""
    py = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    marker = VENV / ".installed"
    if not (py.exists() and marker.exists() and marker.read_text() == REQUIREMENT):
        print(f"==> making {VENV.relative_to(ROOT)} ({REQUIREMENT})", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", REQUIREMENT], check=True)
        marker.write_text(REQUIREMENT)
    os.execv(str(py), [str(py), str(Path(__file__).resolve()), *argv])


# --- Ed25519 arithmetic (RFC 8032 §5.1), for the hand-built cases ---------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, -1, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENTITY = (0, 1, 1, 0)  # extended coordinates (X, Y, Z, T)


def _recover_x(y: int, sign: int, strict: bool) -> int | None:
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    if x2 == 0:
        return None if (sign and strict) else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x & 1 != sign:
        x = P - x
    return x


def decode_point(b: bytes, strict: bool = True):
    """A 32-byte encoding to a point; strict refuses y >= p and "-0"."""
    n = int.from_bytes(b, "little")
    sign, y = n >> 255, n & ((1 << 255) - 1)
    if y >= P:
        if strict:
            return None
        y -= P
    x = _recover_x(y, sign, strict)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def add(p, q):
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * p[3] * q[3] * D % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def neg(p):
    return ((-p[0]) % P, p[1], p[2], (-p[3]) % P)


def mul(s: int, p):
    q = IDENTITY
    while s > 0:
        if s & 1:
            q = add(q, p)
        p = add(p, p)
        s >>= 1
    return q


def encode_point(p) -> bytes:
    zi = pow(p[2], -1, P)
    x, y = p[0] * zi % P, p[1] * zi % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def same_point(p, q) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


BASE = (lambda y: (_recover_x(y, 0, True), y, 1, _recover_x(y, 0, True) * y % P))(
    4 * pow(5, -1, P) % P
)


def small_order(p) -> bool:
    return same_point(mul(8, p), IDENTITY)


def _torsion_points() -> list[bytes]:
    """The canonical encodings of the 8 points of order dividing 8."""
    for y in range(2, 1000):
        q = decode_point(y.to_bytes(32, "little"))
        if q is None:
            continue
        t = mul(L, q)  # the torsion component of q, times a unit
        if not same_point(mul(4, t), IDENTITY):  # order 8: it generates them all
            return sorted(encode_point(mul(k, t)) for k in range(8))
    raise AssertionError("no point of order 8 found")


SMALL_ORDER_ENCODINGS = _torsion_points()
IDENTITY_ENC = encode_point(IDENTITY)  # 01 00 … 00
ORDER2_ENC = encode_point((0, P - 1, 1, 0))  # (0, -1): ec ff … ff 7f


def sha512_int(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def secret_scalar(seed: bytes) -> tuple[int, bytes]:
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def public_key(seed: bytes) -> bytes:
    return encode_point(mul(secret_scalar(seed)[0], BASE))


def dom2(phflag: int, context: bytes) -> bytes:
    return b"SigEd25519 no Ed25519 collisions" + bytes([phflag, len(context)]) + context


def sign_pure(seed: bytes, message: bytes, dom: bytes = b"") -> bytes:
    """Ed25519 (dom empty), Ed25519ctx or Ed25519ph (dom = dom2(…))."""
    a, prefix = secret_scalar(seed)
    pk = encode_point(mul(a, BASE))
    r = sha512_int(dom, prefix, message) % L
    r_enc = encode_point(mul(r, BASE))
    k = sha512_int(dom, r_enc, pk, message) % L
    return r_enc + ((r + k * a) % L).to_bytes(32, "little")


def challenge(r_enc: bytes, pk: bytes, message: bytes) -> int:
    return sha512_int(r_enc, pk, message) % L


def key_usable(pk: bytes) -> bool:
    """A pinned key: a canonical encoding of a point not of small order."""
    a = decode_point(pk, strict=True)
    return a is not None and not small_order(a)


def verify_strict(pk: bytes, message: bytes, sig: bytes) -> bool:
    """The standard's signature check (docs/ticket-token.md, step 9)."""
    if len(sig) != 64:
        return False
    r_enc, s = sig[:32], int.from_bytes(sig[32:], "little")
    if s >= L:
        return False
    a = decode_point(pk, strict=True)
    r = decode_point(r_enc, strict=True)
    if a is None or r is None or small_order(a) or small_order(r):
        return False
    k = challenge(r_enc, pk, message)
    return encode_point(add(mul(s, BASE), neg(mul(k, a)))) == r_enc


def verify_lax(pk: bytes, message: bytes, sig: bytes, *, cofactored=False, check_s=True,
               compare_points=False) -> bool:
    """Plain RFC 8032 verification as lenient libraries do it: no small-order
    checks; optionally cofactored, without S < L, or comparing R as a point."""
    r_enc, s = sig[:32], int.from_bytes(sig[32:], "little")
    if check_s and s >= L:
        return False
    a = decode_point(pk, strict=False)
    r = decode_point(r_enc, strict=False)
    if a is None or r is None:
        return False
    k = challenge(r_enc, pk, message)
    lhs = add(mul(s, BASE), neg(mul(k, a)))
    if cofactored:
        return same_point(mul(8, lhs), mul(8, r))
    if compare_points:
        return same_point(lhs, r)
    return encode_point(lhs) == r_enc


# --- Base45 (RFC 9285) ------------------------------------------------------

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


class Base45Error(ValueError):
    pass


def b45encode(data: bytes) -> str:
    out = []
    for i in range(0, len(data), 2):
        chunk = data[i:i + 2]
        if len(chunk) == 2:
            n = chunk[0] * 256 + chunk[1]
            out += [ALPHABET[n % 45], ALPHABET[n // 45 % 45], ALPHABET[n // 2025]]
        else:
            n = chunk[0]
            out += [ALPHABET[n % 45], ALPHABET[n // 45]]
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Strict: the 45 characters only, length 3n or 3n+2, no group over its range."""
    values = []
    for c in text:
        i = ALPHABET.find(c)
        if i < 0 or len(c.encode()) != 1:
            raise Base45Error(f"character {c!r} is not Base45")
        values.append(i)
    if len(values) % 3 == 1:
        raise Base45Error(f"length {len(values)} is neither 3n nor 3n+2")
    out = bytearray()
    for i in range(0, len(values), 3):
        g = values[i:i + 3]
        if len(g) == 3:
            n = g[0] + g[1] * 45 + g[2] * 2025
            if n > 0xFFFF:
                raise Base45Error(f"group {text[i:i + 3]!r} is {n}, over 65535")
            out += bytes([n >> 8, n & 0xFF])
        else:
            n = g[0] + g[1] * 45
            if n > 0xFF:
                raise Base45Error(f"group {text[i:i + 2]!r} is {n}, over 255")
            out.append(n)
    return bytes(out)


def b45decode_lax(text: str) -> bytes:
    """What a lax decoder does: folds case, wraps overflowing groups."""
    values = [ALPHABET.index(c) for c in text.upper()]
    out = bytearray()
    for i in range(0, len(values) - len(values) % 3, 3):
        n = values[i] + values[i + 1] * 45 + values[i + 2] * 2025
        out += bytes([(n >> 8) & 0xFF, n & 0xFF])
    if len(values) % 3 == 2:
        out.append((values[-2] + values[-1] * 45) & 0xFF)
    return bytes(out)


# --- civil time -------------------------------------------------------------

EPOCH = datetime.datetime(2000, 1, 1)


def minute(civil: str) -> int:
    """`YYYY-MM-DDTHH:MM` (the scenic area's civil time) → minutes since 2000-01-01 00:00."""
    t = datetime.datetime.strptime(civil, "%Y-%m-%dT%H:%M")
    days = (t.date() - EPOCH.date()).days
    return days * 1440 + t.hour * 60 + t.minute


def civil(m: int) -> str:
    days, rest = divmod(m, 1440)
    if days > (datetime.date(9999, 12, 31) - EPOCH.date()).days:
        return f"(after 9999-12-31, minute {m})"
    d = EPOCH.date() + datetime.timedelta(days=days)
    return f"{d.isoformat()}T{rest // 60:02d}:{rest % 60:02d}"


# --- the holder hash --------------------------------------------------------

ASCII_WHITESPACE = " \t\n\x0c\r"


class IdNumberError(ValueError):
    pass


def normalise_id(id_number: str) -> str:
    t = id_number.strip(ASCII_WHITESPACE)
    if not _ascii_alnum(t):
        raise IdNumberError(f"{id_number!r} is not an ID number (0-9, A-Z after trimming)")
    return t.translate(str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def _ascii_alnum(t: str) -> bool:
    return t != "" and all(c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                           for c in t)


def holder_hash(key: bytes, id_number: str) -> bytes:
    return hmac.new(key, normalise_id(id_number).encode("ascii"), hashlib.sha256).digest()[:16]


def holder_hash_raw(key: bytes, text: str) -> bytes:
    """HMAC over text exactly as given (for minting deliberate mistakes)."""
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()[:16]


# --- the token --------------------------------------------------------------

PREFIX = "T1:"
DOMAIN = b"scenic-ticket/v1"
FLAG_HOLDER, FLAG_GROUP = 0x01, 0x02
REASONS = [
    "not_a_token", "unknown_version", "bad_base45", "bad_length", "reserved_flags",
    "unknown_key", "key_not_yet_valid", "key_retired", "bad_signature",
    "bad_group_size", "not_yet_valid", "expired", "bad_id_number", "holder_mismatch",
]


def payload_bytes(f: dict, *, flags: int | None = None, version: int = 1) -> bytes:
    if flags is None:
        flags = (FLAG_HOLDER if f["holder"] is not None else 0) | (
            FLAG_GROUP if f["group"] is not None else 0)
    b = bytes([version, flags])
    b += f["key_id"].to_bytes(2, "big") + f["ticket_id"].to_bytes(8, "big")
    b += f["product_id"].to_bytes(4, "big")
    b += f["valid_from"].to_bytes(4, "big") + f["valid_until"].to_bytes(4, "big")
    b += f["entries"].to_bytes(2, "big")
    if f["holder"] is not None:
        b += bytes.fromhex(f["holder"])
    if f["group"] is not None:
        b += f["group"].to_bytes(2, "big")
    return b + bytes.fromhex(f["seed"])


def sign_lib(seed: bytes, message: bytes) -> bytes:
    """Ed25519 from the cryptography package (OpenSSL); checked against ours."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    sig = Ed25519PrivateKey.from_private_bytes(seed).sign(message)
    assert sig == sign_pure(seed, message), "OpenSSL and the pure Ed25519 disagree"
    return sig


def openssl_accepts(pk: bytes, message: bytes, sig: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, message)
        return True
    except (InvalidSignature, ValueError):
        return False


def token_text(all_bytes: bytes, prefix: str = PREFIX) -> str:
    return prefix + b45encode(all_bytes)


def parse_fields(b: bytes) -> dict:
    flags = b[1]
    at = 26
    holder = group = None
    if flags & FLAG_HOLDER:
        holder, at = b[at:at + 16].hex(), at + 16
    if flags & FLAG_GROUP:
        group, at = int.from_bytes(b[at:at + 2], "big"), at + 2
    return {
        "key_id": int.from_bytes(b[2:4], "big"),
        "ticket_id": int.from_bytes(b[4:12], "big"),
        "product_id": int.from_bytes(b[12:16], "big"),
        "valid_from": int.from_bytes(b[16:20], "big"),
        "valid_until": int.from_bytes(b[20:24], "big"),
        "entries": int.from_bytes(b[24:26], "big"),
        "holder": holder,
        "group": group,
        "seed": b[at:at + 8].hex(),
    }


def verify_token(text: str, pinned: list[dict], now: int, id_hash_key: bytes,
                 id_number: str | None) -> tuple[str | None, dict | None]:
    """The standard's verification algorithm, step by step (docs/ticket-token.md).
    Returns (None, fields) when valid, else (reason, None)."""
    # 1. The reader's line ending is transport, not token.
    while text.endswith(("\r", "\n")):
        text = text[:-1]
    # 2. The prefix names the version.
    m = re.match(r"T([0-9]{1,3}):", text, re.ASCII)
    if not m:
        return "not_a_token", None
    if m.group(1) != "1":
        return "unknown_version", None
    # 3. Strict Base45.
    try:
        b = b45decode(text[m.end():])
    except Base45Error:
        return "bad_base45", None
    # 4.–7. Layout.
    if len(b) < 98:
        return "bad_length", None
    if b[0] != 1:
        return "unknown_version", None
    if b[1] & ~(FLAG_HOLDER | FLAG_GROUP) & 0xFF:
        return "reserved_flags", None
    want = 34 + (16 if b[1] & FLAG_HOLDER else 0) + (2 if b[1] & FLAG_GROUP else 0) + 64
    if len(b) != want:
        return "bad_length", None
    payload, sig = b[:-64], b[-64:]
    f = parse_fields(payload)
    # 8. The key the token names, pinned, usable and valid now.
    keys = [k for k in pinned if k["key_id"] == f["key_id"]]
    assert len(keys) <= 1, "key ids are unique among pinned keys"
    if not keys or not key_usable(bytes.fromhex(keys[0]["public_key"])):
        return "unknown_key", None
    k = keys[0]
    if k["valid_from"] is not None and now < k["valid_from"]:
        return "key_not_yet_valid", None
    if k["valid_until"] is not None and now >= k["valid_until"]:
        return "key_retired", None
    # 9. The signature, strictly.
    if not verify_strict(bytes.fromhex(k["public_key"]), DOMAIN + payload, sig):
        return "bad_signature", None
    # 10. Signed content that no valid ticket has.
    if f["group"] == 0:
        return "bad_group_size", None
    # 11. The validity window, half-open.
    if now < f["valid_from"]:
        return "not_yet_valid", None
    if now >= f["valid_until"]:
        return "expired", None
    # 12. The holder, when an ID number is presented with the token.
    if id_number is not None and f["holder"] is not None:
        try:
            h = holder_hash(id_hash_key, id_number)
        except IdNumberError:
            return "bad_id_number", None
        if not hmac.compare_digest(h, bytes.fromhex(f["holder"])):
            return "holder_mismatch", None
    return None, f


def qr_version_m(chars: int) -> int:
    """The smallest QR version holding `chars` alphanumeric characters at level M."""
    data_codewords_m = [16, 28, 44, 64, 86, 108, 124, 154, 182, 216, 254, 290, 334]
    for v, cw in enumerate(data_codewords_m, start=1):
        count_bits = 9 if v <= 9 else 11
        bits = 4 + count_bits + chars // 2 * 11 + chars % 2 * 6
        if bits <= cw * 8:
            return v
    raise ValueError("too long")


# --- lax behaviours: each invalid vector with a `trap` is accepted by one ----


def accepted(token, pinned, now, id_number=None) -> bool:
    return verify_token(token, pinned, now, ID_HASH_KEY, id_number)[0] is None


def lax_case_folding(token, pinned, now, id_number):
    return accepted(token.upper(), pinned, now, id_number)


def lax_trimming(token, pinned, now, id_number):
    return accepted(token.strip(), pinned, now, id_number)


def lax_nfkc(token, pinned, now, id_number):
    return accepted(unicodedata.normalize("NFKC", token), pinned, now, id_number)


def _lax_parse(token, pinned, tail: bool) -> bool:
    """Signature located by a lax parser: right after the payload (tail ignored)
    or at the end (anything between ignored)."""
    b = b45decode_lax(token[3:])
    n = 34 + (16 if b[1] & FLAG_HOLDER else 0) + (2 if b[1] & FLAG_GROUP else 0)
    sig = b[n:n + 64] if tail else b[-64:]
    k = next(k for k in pinned if k["key_id"] == int.from_bytes(b[2:4], "big"))
    return verify_strict(bytes.fromhex(k["public_key"]), DOMAIN + b[:n], sig)


def lax_ignores_tail(token, pinned, now, id_number):
    return _lax_parse(token, pinned, tail=True)


def lax_signature_from_end(token, pinned, now, id_number):
    return _lax_parse(token, pinned, tail=False)


def lax_wrapping_base45(token, pinned, now, id_number):
    return accepted(token[:3] + b45encode(b45decode_lax(token[3:])), pinned, now, id_number)


def lax_ignores_reserved_flags(token, pinned, now, id_number):
    b = bytearray(b45decode(token[3:]))
    sig_ok = _lax_parse(token, pinned, tail=True)
    b[1] &= FLAG_HOLDER | FLAG_GROUP
    return sig_ok and parse_fields(bytes(b[:-64]))["valid_from"] <= now


def lax_signature(**how):
    """The token's signature under a lenient Ed25519 verifier (`verify_lax`)."""
    def check(token, pinned, now, id_number):
        b = b45decode(token[3:])
        k = next(k for k in pinned if k["key_id"] == int.from_bytes(b[2:4], "big"))
        return verify_lax(bytes.fromhex(k["public_key"]), DOMAIN + b[:-64], b[-64:], **how)
    return check


def lax_holder(transform):
    """The holder matches when the ID number is first changed by `transform`."""
    def check(token, pinned, now, id_number):
        b = b45decode(token[3:])
        want = parse_fields(b[:-64])["holder"]
        return holder_hash(ID_HASH_KEY, transform(id_number)).hex() == want
    return check


# --- the vectors ------------------------------------------------------------

SEED_1 = bytes([1]) * 32  # central signing key, id 1 (as in ticket-token-v1.json)
SEED_2 = bytes([2]) * 32  # central signing key, id 2 (rotation)
SEED_FORGER = bytes([0x66]) * 32  # nobody pins it
ID_HASH_KEY = bytes(range(32))
ID_1 = "11010519491231002X"
ID_2 = "440524188001010014"


class Suite:
    def __init__(self):
        self.pk1, self.pk2 = public_key(SEED_1), public_key(SEED_2)
        self.pk_forger = public_key(SEED_FORGER)
        self.signers = {"central-1": SEED_1, "central-2": SEED_2, "forger": SEED_FORGER}
        self.tokens: list[dict] = []
        self.traps_openssl: list[tuple[str, bool]] = []

    # pinned-key sets
    def key(self, key_id, pk, frm=None, until=None):
        return {"key_id": key_id, "public_key": pk.hex(),
                "valid_from": None if frm is None else minute(frm),
                "valid_until": None if until is None else minute(until)}

    def default_pinned(self):
        return [self.key(1, self.pk1, "2025-01-01T00:00"),
                self.key(2, self.pk2, "2026-01-01T00:00")]

    # payloads
    @staticmethod
    def fields(**kw) -> dict:
        f = {"key_id": 1, "ticket_id": 1001, "product_id": 100,
             "valid_from": minute("2026-05-01T08:00"), "valid_until": minute("2026-05-01T18:00"),
             "entries": 1, "holder": None, "group": None, "seed": "0001020304050607"}
        f.update(kw)
        return f

    def signed(self, f: dict, signer: str = "central-1", **kw) -> bytes:
        p = payload_bytes(f, **kw)
        return p + sign_lib(self.signers[signer], DOMAIN + p)

    def add(self, name: str, token: str, expect: str | None, *, now: str,
            pinned=None, id_number=None, encoded_by: str | None = None,
            fields: dict | None = None, trap: str | None = None, lax=None,
            note: str | None = None):
        """One token vector. `trap` names the lax behaviour that would accept an
        invalid token; `lax` is that behaviour, and must accept it."""
        pinned = self.default_pinned() if pinned is None else pinned
        reason, got = verify_token(token, pinned, minute(now), ID_HASH_KEY, id_number)
        assert reason == expect, f"{name}: the algorithm says {reason}, the vector {expect}"
        assert (trap is None) == (lax is None), f"{name}: a trap needs its lax check"
        if lax is not None:
            assert expect is not None and lax(token, pinned, minute(now), id_number), \
                f"{name}: the lax behaviour does not accept it, so it is no trap"
        v = {"name": name, "token": token, "now": minute(now), "now_civil": now,
             "pinned": pinned}
        if id_number is not None:
            v["id_number"] = id_number
        if expect is None:
            assert got == fields, f"{name}: decoded {got} != minted {fields}"
            v["expect"] = "valid"
            v["decoded"] = dict(got, persons=got["group"] if got["group"] is not None else 1)
            if encoded_by is not None:
                assert token == token_text(self.signed(fields, encoded_by)), name
                v["encoded_by"] = encoded_by
        else:
            v["expect"] = "invalid"
            v["reason"] = expect
        if trap:
            v["trap"] = trap
        if note:
            v["note"] = note
        assert all(t["name"] != name for t in self.tokens), f"duplicate vector name {name}"
        self.tokens.append(v)

    def valid(self, name, f, *, now, signer="central-1", **kw):
        self.add(name, token_text(self.signed(f, signer)), None, now=now, encoded_by=signer,
                 fields=f, **kw)

    # --- the cases ---
    def build(self):
        holder1 = holder_hash(ID_HASH_KEY, ID_1).hex()
        day = self.fields()
        annual = self.fields(ticket_id=900000000001, product_id=7, entries=0, holder=holder1,
                             valid_from=minute("2026-01-01T00:00"),
                             valid_until=minute("2027-01-01T00:00"), seed="0102030405060708")
        group = self.fields(key_id=2, ticket_id=42, product_id=300, group=30,
                            valid_from=minute("2026-05-01T09:00"),
                            valid_until=minute("2026-05-01T17:00"), seed="ffffffffffffffff")
        both = self.fields(key_id=2, ticket_id=77001, product_id=310, group=4, holder=holder1,
                           valid_from=minute("2026-05-01T08:00"),
                           valid_until=minute("2026-05-04T00:00"), entries=3,
                           seed="a1b2c3d4e5f60718")
        night = self.fields(ticket_id=5005, product_id=120,
                            valid_from=minute("2026-05-01T20:00"),
                            valid_until=minute("2026-05-02T02:00"), seed="5a5a5a5a5a5a5a5a")
        t_day = token_text(self.signed(day))
        t_annual = token_text(self.signed(annual))

        # Positive: every option combination.
        self.valid("no options: a single-entry day ticket", day, now="2026-05-01T10:00")
        self.valid("holder only: real-name annual ticket, unlimited entries", annual,
                   now="2026-05-01T10:00", id_number=ID_1)
        self.valid("group only: a tour group of 30 (second key)", group, now="2026-05-01T10:00",
                   signer="central-2")
        self.valid("holder and group, three entries over three days", both,
                   now="2026-05-03T23:59", signer="central-2", id_number=ID_1)
        self.valid("every field at its largest", self.fields(
            key_id=65535, ticket_id=2**64 - 1, product_id=2**32 - 1, valid_from=0,
            valid_until=2**32 - 1, entries=65535, group=65535, holder="ff" * 16,
            seed="ffffffffffffffff"), now="2026-05-01T10:00",
            pinned=[self.key(65535, self.pk1)])
        self.valid("group field present with 1: one person",
                   self.fields(group=1, seed="1111111111111111"), now="2026-05-01T10:00")
        # Time: the window is half-open, in civil minutes, across the date change.
        self.valid("night ticket: its first minute, 20:00", night, now="2026-05-01T20:00")
        self.valid("night ticket: 23:59 before the date change", night, now="2026-05-01T23:59")
        self.valid("night ticket: 00:00 after the date change", night, now="2026-05-02T00:00")
        self.valid("night ticket: its last minute, 01:59", night, now="2026-05-02T01:59")
        self.valid("13676160 is 2026-01-01 08:00: valid from that minute",
                   self.fields(valid_from=13676160, valid_until=13676160 + 600,
                               seed="0808080808080808"), now="2026-01-01T08:00")
        # Holder normalisation.
        self.valid("holder: ID number with a lower-case x", annual, now="2026-05-01T10:00",
                   id_number="11010519491231002x")
        self.valid("holder: ID number with surrounding spaces and a tab", annual,
                   now="2026-05-01T10:00", id_number="  11010519491231002x\t")
        self.valid("holder: no ID number presented (the field is reported, not checked)",
                   annual, now="2026-05-01T10:00")
        self.valid("no holder field: a presented ID number is not compared", day,
                   now="2026-05-01T10:00", id_number=ID_2)
        # Keys: rotation windows.
        rotation = [self.key(1, self.pk1, "2025-01-01T00:00", "2026-07-01T00:00"),
                    self.key(2, self.pk2, "2026-06-01T00:00")]
        long_day = self.fields(valid_from=minute("2026-05-01T00:00"),
                               valid_until=minute("2026-08-01T00:00"), entries=0,
                               seed="7070707070707070")
        long_day2 = dict(long_day, key_id=2, seed="7171717171717171")
        self.valid("key 1 in its last minute before retirement", long_day,
                   now="2026-06-30T23:59", pinned=rotation)
        self.valid("key 2 in its first minute", long_day2, signer="central-2",
                   now="2026-06-01T00:00", pinned=rotation)
        # Transport: the scanner's line ending.
        self.add("scanner line ending CR LF after the token", t_day + "\r\n", None,
                 now="2026-05-01T10:00", fields=day,
                 note="CR and LF at the end are the reader's, not the token's")

        # Negative: text and prefix.
        now = "2026-05-01T10:00"
        self.add("a printed serial, not a token", "A0000123", "not_a_token", now=now)
        self.add("lower-case prefix t1:", "t1:" + t_day[3:], "not_a_token", now=now,
                 trap="case folding", lax=lax_case_folding)
        self.add("leading space before the prefix", " " + t_day, "not_a_token", now=now,
                 trap="trimming", lax=lax_trimming)
        self.add("prefix without its colon", "T1" + t_day[3:], "not_a_token", now=now)
        self.add("T2: prefix on a format-1 body", "T2:" + t_day[3:], "unknown_version", now=now,
                 note="T<digits>: is a token of that version; only T1: is format 1")
        self.add("T01: prefix", "T01:" + t_day[3:], "unknown_version", now=now)
        self.add("version byte 2 under T1:, signed", token_text(self.signed(day, version=2)),
                 "unknown_version", now=now)
        self.add("version byte 0 under T1:, signed", token_text(self.signed(day, version=0)),
                 "unknown_version", now=now)
        # Base45.
        body = t_day[3:]
        self.add("lower-case Base45", "T1:" + body.lower(), "bad_base45", now=now,
                 trap="case folding", lax=lax_case_folding)
        assert b45decode_lax(body.lower()) == b45decode(body)
        self.add("trailing space", t_day + " ", "bad_base45", now=now, trap="trimming",
                 lax=lax_trimming)
        self.add("space before the line ending", t_day + " \r\n", "bad_base45", now=now,
                 trap="trimming", lax=lax_trimming)
        self.add("two trailing spaces (a 2-character group of 1656)", t_day + "  ", "bad_base45",
                 now=now, trap="trimming", lax=lax_trimming)
        self.add("tab at the end", t_day + "\t", "bad_base45", now=now)
        self.add("character outside the alphabet", t_day[:12] + "_" + t_day[13:], "bad_base45",
                 now=now)
        i = next(i for i in range(10, len(t_day)) if t_day[i].isascii() and t_day[i].isalnum())
        fw = t_day[:i] + chr(ord(t_day[i]) + 0xFEE0) + t_day[i + 1:]
        self.add("a full-width character", fw, "bad_base45", now=now,
                 trap="Unicode normalisation (NFKC)",
                 lax=lax_nfkc)
        # A group re-encoded with its value + 65536: a wrapping decoder reads the same bytes.
        noncanon = None
        for i in range(0, len(body), 3):
            g = body[i:i + 3]
            n = ALPHABET.index(g[0]) + ALPHABET.index(g[1]) * 45 + ALPHABET.index(g[2]) * 2025
            if n + 65536 <= 44 + 44 * 45 + 44 * 2025:
                v = n + 65536
                alt = ALPHABET[v % 45] + ALPHABET[v // 45 % 45] + ALPHABET[v // 2025]
                noncanon = "T1:" + body[:i] + alt + body[i + 3:]
                break
        assert noncanon and b45decode_lax(noncanon[3:]) == b45decode(body)
        assert verify_lax(self.pk1, DOMAIN + b45decode(body)[:-64], b45decode(body)[-64:])
        self.add("non-canonical Base45 group (value over 65535)", noncanon, "bad_base45", now=now,
                 trap="a decoder that wraps a group's value modulo 65536 reads the genuine bytes",
                 lax=lax_wrapping_base45)
        self.add("body of length 3n+1", t_day + "0", "bad_base45", now=now)
        # Length.
        raw = b45decode(body)
        self.add("empty body", "T1:", "bad_length", now=now)
        self.add("truncated: the last 2 bytes of the signature missing", token_text(raw[:-2]),
                 "bad_length", now=now)
        self.add("truncated: only the payload", token_text(raw[:-64]), "bad_length", now=now)
        self.add("an odd byte appended", token_text(raw + b"\x00"), "bad_length", now=now)
        self.add("junk after the signature", token_text(raw + b"\x00\x00"), "bad_length", now=now,
                 trap="a parser that takes the 64 bytes after the payload as the signature "
                      "ignores the tail, and the signature verifies", lax=lax_ignores_tail)
        self.add("junk between payload and signature",
                 token_text(raw[:-64] + b"JUNK" + raw[-64:]), "bad_length", now=now,
                 trap="a parser that reads the payload by its flags and the signature from the "
                      "end skips the junk, and the signature verifies", lax=lax_signature_from_end)
        holder_flag_short = payload_bytes(day, flags=FLAG_HOLDER)
        self.add("holder flag set, holder field missing (signed)",
                 token_text(holder_flag_short + sign_lib(SEED_1, DOMAIN + holder_flag_short)),
                 "bad_length", now=now)
        nf = payload_bytes(dict(day, holder=holder1), flags=0)
        self.add("holder field present, flag clear (signed)",
                 token_text(nf + sign_lib(SEED_1, DOMAIN + nf)), "bad_length", now=now)
        # Reserved flags.
        for bit in (2, 7):
            p = payload_bytes(day, flags=1 << bit)
            self.add(f"reserved flag bit {bit} set (signed)",
                     token_text(p + sign_lib(SEED_1, DOMAIN + p)), "reserved_flags", now=now,
                     trap="a verifier that ignores unknown flags would admit a ticket whose "
                          "restriction it cannot read", lax=lax_ignores_reserved_flags)
        # Keys.
        self.add("no key pinned under the token's key id",
                 token_text(self.signed(self.fields(key_id=3), "central-1")), "unknown_key",
                 now=now)
        self.add("key 1 retired: the minute it retires", token_text(self.signed(long_day)),
                 "key_retired", now="2026-07-01T00:00", pinned=rotation)
        self.add("key 2 not valid yet: the minute before", token_text(self.signed(long_day2,
                 "central-2")), "key_not_yet_valid", now="2026-05-31T23:59", pinned=rotation)
        not_a_point = next(y.to_bytes(32, "little") for y in range(2, 100)
                           if decode_point(y.to_bytes(32, "little")) is None)
        self.add("the pinned key is not a curve point", t_day, "unknown_key", now=now,
                 pinned=[self.key(1, not_a_point)])
        y = next(y for y in range(19) if (e := (y + P).to_bytes(32, "little"))
                 and (q := decode_point(e, strict=False)) and not small_order(q))
        self.add("the pinned key is a non-canonical encoding (y + p)", t_day, "unknown_key",
                 now=now, pinned=[self.key(1, (y + P).to_bytes(32, "little"))])
        # A small-order key: one signature verifies for every ticket under plain Ed25519.
        r = sha512_int(b"universal nonce") % L
        universal = encode_point(mul(r, BASE)) + r.to_bytes(32, "little")
        for i, f in enumerate([self.fields(key_id=9, ticket_id=666, seed="0909090909090909"),
                               self.fields(key_id=9, ticket_id=667, entries=0, group=50,
                                           valid_until=minute("2030-01-01T00:00"),
                                           seed="0a0a0a0a0a0a0a0a")]):
            p = payload_bytes(f)
            assert verify_lax(IDENTITY_ENC, DOMAIN + p, universal)
            self.traps_openssl.append((f"identity key, universal signature {i + 1}",
                                       openssl_accepts(IDENTITY_ENC, DOMAIN + p, universal)))
            self.add(f"small-order key (identity) pinned: universal signature, ticket {i + 1}",
                     token_text(p + universal), "unknown_key", now=now,
                     pinned=[self.key(9, IDENTITY_ENC)],
                     trap="plain Ed25519 accepts this one signature for every payload under "
                          "the identity key", lax=lax_signature())
        for n in range(1000):
            f = self.fields(key_id=9, ticket_id=668, seed=n.to_bytes(8, "big").hex())
            p = payload_bytes(f)
            if challenge(universal[:32], ORDER2_ENC, DOMAIN + p) % 2 == 0:
                break
        assert verify_lax(ORDER2_ENC, DOMAIN + p, universal)
        self.traps_openssl.append(("order-2 key",
                                   openssl_accepts(ORDER2_ENC, DOMAIN + p, universal)))
        self.add("small-order key (order 2) pinned: universal signature", token_text(p + universal),
                 "unknown_key", now=now, pinned=[self.key(9, ORDER2_ENC)],
                 trap="plain Ed25519 accepts the signature for every payload whose challenge "
                      "k is even", lax=lax_signature())
        # Signatures.
        self.add("signed by key 2, named key 1", token_text(self.signed(day, "central-2")),
                 "bad_signature", now=now)
        self.add("signed by a key nobody pinned", token_text(self.signed(day, "forger")),
                 "bad_signature", now=now)
        tampered = bytearray(raw)
        tampered[11] ^= 1  # the ticket id's last byte
        self.add("payload changed after signing (ticket id)", token_text(bytes(tampered)),
                 "bad_signature", now=now)
        tampered = bytearray(raw)
        tampered[-1] ^= 0x01
        self.add("signature changed (last byte of S)", token_text(bytes(tampered)),
                 "bad_signature", now=now)
        p = payload_bytes(day)
        self.add("signed without the domain string", token_text(p + sign_lib(SEED_1, p)),
                 "bad_signature", now=now)
        self.add("signed as Ed25519ctx, context scenic-ticket/v1",
                 token_text(p + sign_pure(SEED_1, p, dom2(0, DOMAIN))), "bad_signature", now=now)
        ph = hashlib.sha512(DOMAIN + p).digest()
        self.add("signed as Ed25519ph", token_text(p + sign_pure(SEED_1, ph, dom2(1, b""))),
                 "bad_signature", now=now)
        self.add("another ticket's valid signature", token_text(p + t_annual_sig(t_annual)),
                 "bad_signature", now=now)
        # Hand-built signatures by the real key holder that lenient verifiers accept.
        a, _ = secret_scalar(SEED_1)
        msg = DOMAIN + p
        for label, r_enc, check, trap in [
            ("identity R (01 00…00)", IDENTITY_ENC, dict(),
             "plain Ed25519 accepts: [S]B = R + [k]A holds with R the identity"),
            ("identity R, non-canonical encoding (sign bit set)", IDENTITY_ENC[:31] + b"\x80",
             dict(compare_points=True), "a verifier comparing R as a point, not as bytes"),
            ("R of order 2 (ec ff…ff 7f)", ORDER2_ENC, dict(cofactored=True),
             "cofactored verification accepts"),
        ]:
            sig = r_enc + (challenge(r_enc, self.pk1, msg) * a % L).to_bytes(32, "little")
            assert verify_lax(self.pk1, msg, sig, **check) and not verify_strict(self.pk1, msg, sig)
            self.traps_openssl.append((label, openssl_accepts(self.pk1, msg, sig)))
            self.add(f"signature with {label}", token_text(p + sig), "bad_signature", now=now,
                     trap=trap, lax=lax_signature(**check))
        good = raw[-64:]
        s_plus_l = good[:32] + (int.from_bytes(good[32:], "little") + L).to_bytes(32, "little")
        assert verify_lax(self.pk1, msg, s_plus_l, check_s=False)
        self.traps_openssl.append(("S + L", openssl_accepts(self.pk1, msg, s_plus_l)))
        self.add("S + L (S not below the group order)", token_text(p + s_plus_l), "bad_signature",
                 now=now, trap="a verifier that reduces S modulo L (or checks only its top bits)",
                 lax=lax_signature(check_s=False))
        self.add("all-zero signature", token_text(p + bytes(64)), "bad_signature", now=now)
        # Signed content no valid ticket has.
        g0 = self.fields(group=0, seed="0000000000000001")
        self.add("group size 0 (signed)", token_text(self.signed(g0)), "bad_group_size", now=now,
                 note="an absent group field means 1 person; a present one must be at least 1")
        # Time.
        self.add("day ticket: one minute before", t_day, "not_yet_valid", now="2026-05-01T07:59")
        self.add("day ticket: at valid_until (exclusive)", t_day, "expired", now="2026-05-01T18:00")
        t_night = token_text(self.signed(night))
        self.add("night ticket: 19:59 the evening before", t_night, "not_yet_valid",
                 now="2026-05-01T19:59")
        self.add("night ticket: 02:00 after the date change", t_night, "expired",
                 now="2026-05-02T02:00")
        self.add("night ticket: the next evening", t_night, "expired", now="2026-05-02T20:30")
        t_0800 = token_text(self.signed(self.fields(valid_from=13676160, valid_until=13676160 + 600,
                                                    seed="0808080808080808")))
        self.add("13676160 is 08:00, not 00:00: refused at 2026-01-01 00:00", t_0800,
                 "not_yet_valid", now="2026-01-01T00:00")
        empty = self.fields(valid_from=minute("2026-05-01T12:00"),
                            valid_until=minute("2026-05-01T12:00"), seed="0e0e0e0e0e0e0e0e")
        t_empty = token_text(self.signed(empty))
        self.add("empty window (valid_until = valid_from): before it", t_empty, "not_yet_valid",
                 now="2026-05-01T11:59")
        self.add("empty window (valid_until = valid_from): at it", t_empty, "expired",
                 now="2026-05-01T12:00")
        rev = self.fields(valid_from=minute("2026-05-01T18:00"),
                          valid_until=minute("2026-05-01T08:00"), seed="0f0f0f0f0f0f0f0f")
        self.add("reversed window: between its ends", token_text(self.signed(rev)), "expired",
                 now="2026-05-01T18:00", note="valid_until <= valid_from: valid at no minute")
        # Holder.
        self.add("holder: another person's ID card", t_annual, "holder_mismatch", now=now,
                 id_number=ID_2)
        self.add("holder: full-width digits", t_annual, "bad_id_number", now=now,
                 id_number="".join(chr(ord(c) + 0xFEE0) for c in ID_1),
                 trap="NFKC normalisation would make it match",
                 lax=lax_holder(lambda t: unicodedata.normalize("NFKC", t)))
        self.add("holder: ideographic spaces around the number", t_annual, "bad_id_number", now=now,
                 id_number="\u3000" + ID_1 + "\u3000",
                 trap="Unicode trimming would make it match; only ASCII whitespace is trimmed",
                 lax=lax_holder(str.strip))
        self.add("holder: no-break space after the number", t_annual, "bad_id_number", now=now,
                 id_number=ID_1 + "\u00a0")
        self.add("holder: Cyrillic х (U+0445) for x", t_annual, "bad_id_number", now=now,
                 id_number=ID_1[:-1] + "\u0445")
        self.add("holder: a space inside the number", t_annual, "bad_id_number", now=now,
                 id_number=ID_1[:6] + " " + ID_1[6:])
        self.add("holder: only spaces", t_annual, "bad_id_number", now=now, id_number="   ")
        bad_key = self.fields(**{**annual, "holder": holder_hash_raw(ID_HASH_KEY.hex().encode(),
                                                                     ID_1).hex(),
                                 "seed": "0102030405060709"})
        self.add("holder: minted with the hex text of the key as the key",
                 token_text(self.signed(bad_key)), "holder_mismatch", now=now, id_number=ID_1,
                 note="the ID-hash key is the bytes the hex stands for")
        lower = self.fields(**{**annual, "holder": holder_hash_raw(ID_HASH_KEY,
                                                                   ID_1.lower()).hex(),
                               "seed": "010203040506070a"})
        self.add("holder: minted without upper-casing the x", token_text(self.signed(lower)),
                 "holder_mismatch", now=now, id_number=ID_1)
        # The order of the checks: a token with two faults gets the earlier step's reason.
        p = payload_bytes(self.fields(key_id=3), flags=0x04)
        self.add("order: reserved flag and unknown key -> reserved_flags",
                 token_text(p + sign_lib(SEED_1, DOMAIN + p)), "reserved_flags", now=now)
        p = payload_bytes(self.fields(key_id=3), version=2)
        self.add("order: version byte 2 and unknown key -> unknown_version",
                 token_text(p + sign_lib(SEED_1, DOMAIN + p)), "unknown_version", now=now)
        self.add("order: unknown key and forged -> unknown_key",
                 token_text(self.signed(self.fields(key_id=3), "forger")), "unknown_key", now=now)
        self.add("order: retired key and expired ticket -> key_retired",
                 token_text(self.signed(long_day)), "key_retired", now="2026-08-01T00:00",
                 pinned=rotation)
        self.add("order: forged and expired -> bad_signature",
                 token_text(self.signed(day, "forger")), "bad_signature", now="2026-05-02T10:00")
        self.add("order: group size 0 and expired -> bad_group_size", token_text(self.signed(g0)),
                 "bad_group_size", now="2026-05-02T10:00")
        self.add("order: expired and another person's ID -> expired", t_annual, "expired",
                 now="2027-01-01T00:00", id_number=ID_2)

    def base45_vectors(self) -> list[dict]:
        out = []
        for name, data in [("empty", b""), ("one byte 00", b"\x00"), ("one byte ff", b"\xff"),
                           ("two bytes 0000", b"\x00\x00"), ("two bytes ffff", b"\xff\xff"),
                           ("AB", b"AB"), ("Hello!!", b"Hello!!"), ("base-45", b"base-45"),
                           ("ietf!", b"ietf!")]:
            text = b45encode(data)
            assert b45decode(text) == data
            out.append({"name": name, "text": text, "bytes": data.hex()})
        for name, text in [("3-character group 65536", "GGW"), ("largest 3-character group", ":::"),
                           ("2-character group 256", "U6"), ("length 1", "A"),
                           ("length 4", "BB8A"), ("lower case", "bb8"),
                           ("trailing space (length 4)", "BB8 "), ("leading space", " BB8"),
                           ("line ending", "BB8\n"), ("full-width B", "\uff22B8")]:
            try:
                b45decode(text)
                raise AssertionError(f"{name} decodes")
            except Base45Error:
                pass
            out.append({"name": name, "text": text, "error": "bad_base45"})
        return out

    def holder_vectors(self) -> list[dict]:
        out = []
        for name, text in [("plain", ID_1), ("lower-case x", "11010519491231002x"),
                           ("spaces, tab, CR LF around", " \t11010519491231002x \r\n"),
                           ("digits only", ID_2), ("passport-style letters", "e12345678")]:
            out.append({"name": name, "id_number": text, "normalised": normalise_id(text),
                        "hash": holder_hash(ID_HASH_KEY, text).hex()})
        for name, text in [("full-width digits", "".join(chr(ord(c) + 0xFEE0) for c in ID_1)),
                           ("ideographic spaces", "\u3000" + ID_1 + "\u3000"),
                           ("no-break space", ID_1 + "\u00a0"),
                           ("vertical tab", ID_1 + "\x0b"),
                           ("Cyrillic х", ID_1[:-1] + "\u0445"),
                           ("long s (upper-cases to S elsewhere)", "E1234567\u017f"),
                           ("inner space", ID_1[:6] + " " + ID_1[6:]),
                           ("hyphen", "110105-19491231002X"), ("empty", ""), ("spaces only", "  ")]:
            try:
                normalise_id(text)
                raise AssertionError(f"{name} normalises")
            except IdNumberError:
                pass
            out.append({"name": name, "id_number": text, "error": "bad_id_number"})
        return out


def t_annual_sig(t_annual: str) -> bytes:
    return b45decode(t_annual[3:])[-64:]


def check_old_file() -> None:
    """The first vector file (gated's encoder) must agree with this implementation."""
    if not OLD.exists():
        return
    old = json.loads(OLD.read_text())
    key = old["id_hash_key"].encode()
    for c in old["valid"]:
        seed = bytes([c["signing_seed_byte"]]) * 32
        assert public_key(seed).hex() == c["public_key"], c["name"]
        p = dict(c["payload"])
        hid = p.pop("holder_id_number")
        p["holder"] = None if hid is None else holder_hash(key, hid).hex()
        pb = payload_bytes(p)
        assert token_text(pb + sign_lib(seed, DOMAIN + pb)) == c["token"], \
            f"{OLD.name}: {c['name']} differs from this implementation"


def document(suite: Suite) -> dict:
    pos = sum(t["expect"] == "valid" for t in suite.tokens)
    return {
        "format": "ticket token, format 1 (docs/ticket-token.md)",
        "generator": "scripts/token-vectors.py generate (independent of gated's code)",
        "schema": "docs/ticket-token.md, section 'Test vectors'",
        "counts": {"valid": pos, "invalid": len(suite.tokens) - pos},
        "domain": DOMAIN.decode(),
        "id_hash_key": ID_HASH_KEY.hex(),
        "signers": [{"name": n, "seed": s.hex(), "public_key": public_key(s).hex()}
                    for n, s in suite.signers.items()],
        "small_order_encodings": [e.hex() for e in SMALL_ORDER_ENCODINGS],
        "reasons": REASONS,
        "base45": suite.base45_vectors(),
        "holder_hash": suite.holder_vectors(),
        "tokens": suite.tokens,
    }


def render(doc: dict) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def build() -> tuple[dict, Suite]:
    check_old_file()
    s = Suite()
    s.build()
    reasons = {t.get("reason") for t in s.tokens} - {None}
    assert reasons == set(REASONS), f"reasons without a vector: {set(REASONS) - reasons}"
    return document(s), s


# --- commands -----------------------------------------------------------------


def cmd_generate() -> None:
    doc, suite = build()
    OUT.write_text(render(doc), encoding="utf-8")
    c = doc["counts"]
    print(f"wrote {OUT.relative_to(ROOT)}: {c['valid']} valid, {c['invalid']} invalid token "
          f"vectors, {len(doc['base45'])} Base45, {len(doc['holder_hash'])} holder-hash")
    print("OpenSSL (cryptography) on the hand-built signatures, for information:")
    for label, ok in suite.traps_openssl:
        print(f"  {label}: {'ACCEPTS' if ok else 'refuses'}")


def cmd_check() -> None:
    doc, _ = build()
    if not OUT.exists() or OUT.read_text(encoding="utf-8") != render(doc):
        sys.exit(f"{OUT.relative_to(ROOT)} is not what `generate` writes: run it")
    print(f"{OUT.relative_to(ROOT)} is up to date")


def show(text: str) -> str:
    """Quoted, with every character that is not a visible one escaped."""
    out = []
    for c in text:
        if c == " " or (c.isprintable() and not c.isspace()
                        and (c.isascii() or c == "…" or "\uff01" <= c <= "\uff5e")):
            out.append({'"': '\\"', "\\": "\\\\"}.get(c, c))
        elif c in "\r\n\t":
            out.append({"\r": "\\r", "\n": "\\n", "\t": "\\t"}[c])
        else:
            out.append(f"\\u{ord(c):04x}")
    return '"' + "".join(out) + '"'


def short(text: str, width: int = 44) -> str:
    if len(text) > width:
        text = text[:22] + "…" + text[-(width - 23):]
    return show(text)


def cmd_table() -> None:
    doc = json.loads(OUT.read_text(encoding="utf-8"))
    rows = []
    for i, t in enumerate(doc["tokens"], 1):
        result = "valid" if t["expect"] == "valid" else t["reason"]
        extra = f" id={short(t['id_number'], 24)}" if "id_number" in t else ""
        rows.append((str(i), t["name"], result, t["now_civil"], short(t["token"]) + extra))
    head = ("#", "vector", "expected", "now (civil)", "token")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(5)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    print(line(head))
    print(line(tuple("-" * w for w in widths)))
    for r in rows:
        print(line(r))
    c = doc["counts"]
    print(f"\n{c['valid']} valid, {c['invalid']} invalid token vectors")
    print("\nBase45:")
    for v in doc["base45"]:
        print(f"  {v['name']:<28} {show(v['text']):<18} "
              f"{v.get('bytes', v.get('error')) or '(no bytes)'}")
    print("\nHolder hash (key " + doc["id_hash_key"][:8] + "…):")
    for v in doc["holder_hash"]:
        print(f"  {v['name']:<36} {show(v['id_number']):<32} "
              f"{v.get('hash', v.get('error'))}")


def cmd_explain(name: str) -> None:
    doc = json.loads(OUT.read_text(encoding="utf-8"))
    t = next((t for t in doc["tokens"] if t["name"] == name), None)
    if t is None:
        sys.exit(f"no vector named {name!r}")
    text = t["token"].rstrip("\r\n")
    body = text[3:]
    b = b45decode(body)
    print(f"Token ({len(text)} characters, QR version {qr_version_m(len(text))} at level M):\n")
    print("```\n" + text + "\n```\n")
    print("Base45, first groups (3 characters → 2 bytes, value = c0 + 45·c1 + 2025·c2):\n")
    print("| characters | values | number | bytes |\n| --- | --- | --- | --- |")
    for i in range(0, 12, 3):
        g = body[i:i + 3]
        vals = [ALPHABET.index(c) for c in g]
        n = vals[0] + vals[1] * 45 + vals[2] * 2025
        print(f"| `{g}` | {vals[0]}, {vals[1]}, {vals[2]} | {n} | `{n >> 8:02x} {n & 255:02x}` |")
    print(f"\n{len(b)} bytes: payload {len(b) - 64}, signature 64.\n")
    f = parse_fields(b[:-64])
    print("| offset | bytes (hex) | field | value |\n| --- | --- | --- | --- |")
    rows = [(0, 1, "version", str(b[0])),
            (1, 1, "flags", f"{b[1]:08b}: " + ", ".join(
                n for bit, n in ((1, "holder"), (2, "group")) if b[1] & bit) or "none"),
            (2, 2, "key id", str(f["key_id"])), (4, 8, "ticket id", str(f["ticket_id"])),
            (12, 4, "product id", str(f["product_id"])),
            (16, 4, "valid from", f"{f['valid_from']} = {civil(f['valid_from'])}"),
            (20, 4, "valid until", f"{f['valid_until']} = {civil(f['valid_until'])} (exclusive)"),
            (24, 2, "entries", str(f["entries"]) + (" (unlimited)" if f["entries"] == 0 else ""))]
    at = 26
    if f["holder"] is not None:
        rows.append((at, 16, "holder", "HMAC-SHA256(key, ID)[0..16]"))
        at += 16
    if f["group"] is not None:
        rows.append((at, 2, "group", f"{f['group']} persons"))
        at += 2
    rows.append((at, 8, "seed", "random"))
    rows.append((at + 8, 32, "signature R", "encoded point"))
    rows.append((at + 40, 32, "signature S", "scalar, little-endian, below L"))
    for off, n, field, value in rows:
        print(f"| {off} | `{b[off:off + n].hex(' ')}` | {field} | {value} |")


def main(argv: list[str]) -> None:
    cmds = {"generate": cmd_generate, "check": cmd_check, "table": cmd_table}
    if argv and argv[0] in ("generate", "check"):
        ensure_venv(argv)
    if len(argv) == 2 and argv[0] == "explain":
        return cmd_explain(argv[1])
    if len(argv) != 1 or argv[0] not in cmds:
        sys.exit(__doc__)
    cmds[argv[0]]()


if __name__ == "__main__":
    main(sys.argv[1:])
