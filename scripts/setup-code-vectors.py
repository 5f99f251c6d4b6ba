#!/usr/bin/env python3
"""Writes tests/vectors/setup-code-v1.json: setup codes (docs/setup-code.md)
made by this script, which shares no code with gated, and what a device must
make of each. gated's tests read every vector.

    scripts/setup-code-vectors.py
"""

import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "vectors", "setup-code-v1.json")
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def base45(data: bytes) -> str:
    out = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        c, n = n % 45, n // 45
        d, e = n % 45, n // 45
        out += [ALPHABET[c], ALPHABET[d], ALPHABET[e]]
    if len(data) % 2:
        n = data[-1]
        out += [ALPHABET[n % 45], ALPHABET[n // 45]]
    return "".join(out)


def code(payload, version="1"):
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return f"S{version}:{base45(body)}"


FULL = {
    "central": "https://central.example.cn/api/v1",
    "code": "48213377",
    "device_id": "north-gate-1",
    "role": "lane",
    "site": "泰山景区",
    "lane_group": "north",
    "expires_at_ms": 1796169600000,
}
MINIMAL = {
    "central": "https://central.example.cn/api/v1",
    "code": "90210455",
    "device_id": "kiosk-3",
    "role": "kiosk",
}


def main():
    full = code(FULL)
    vectors = [
        {"name": "every field", "text": full, "expect": FULL},
        {"name": "the fields a code needs", "text": code(MINIMAL), "expect": MINIMAL},
        {"name": "a scanner's line ending is removed", "text": full + "\r\n", "expect": FULL},
        {
            "name": "fields a later version 1 adds are ignored",
            "text": code({**MINIMAL, "note": "from a newer central system"}),
            "expect": MINIMAL,
        },
        {"name": "version 2", "text": code(FULL, "2"), "error": "unknown_version"},
        {"name": "version 10", "text": code(FULL, "10"), "error": "unknown_version"},
        {"name": "cut off by the scanner", "text": full[:-9], "error": "garbled"},
        {"name": "one character lost", "text": full[:20] + full[21:], "error": "garbled"},
        {"name": "lower case", "text": "S1:" + full[3:].lower(), "error": "garbled"},
        {
            "name": "plain http",
            "text": code({**MINIMAL, "central": "http://central.example.cn/api/v1"}),
            "error": "garbled",
        },
        {"name": "no pairing code", "text": code({**MINIMAL, "code": ""}), "error": "garbled"},
        {
            "name": "no device id",
            "text": code({k: v for k, v in MINIMAL.items() if k != "device_id"}),
            "error": "garbled",
        },
        {"name": "unknown role", "text": code({**MINIMAL, "role": "printer"}), "error": "garbled"},
        {"name": "not JSON", "text": "S1:" + base45(b"central=https://x"), "error": "garbled"},
        {"name": "a ticket", "text": "T1:6BFOXN*TS0BI$ZD", "error": "not_a_setup_code"},
        {"name": "a pairing code alone", "text": "48213377", "error": "not_a_setup_code"},
        {"name": "lower-case prefix", "text": "s1:" + full[3:], "error": "not_a_setup_code"},
    ]
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"format": "setup code, version 1", "vectors": vectors}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{OUT}: {len(vectors)} vectors")


if __name__ == "__main__":
    main()
