#!/usr/bin/env python3
"""Makes the lanes' default voice prompts from gated/sounds/prompts.tsv.

    scripts/voice-prompts.py            # every prompt missing or older than the table
    scripts/voice-prompts.py --all      # every prompt

Each row gives <name>.zh.wav and <name>.en.wav: espeak-ng (voices cmn at 190
and en-us at 160 words a minute), then sox: silence trimmed at both ends,
normalised to -1 dBFS, 8 kHz mono G.711 mu-law (telephone quality, what a lane
speaker reproduces; 8 KB a second keeps the 58 files near 1.5 MB). The files are committed, so
neither the build nor the image needs a speech synthesiser; a site's recorded
prompts under /etc/gated/sounds replace them (docs/voice.md).

Needs: apt install espeak-ng sox
"""

import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOUNDS = os.path.join(ROOT, "gated", "sounds")
TABLE = os.path.join(SOUNDS, "prompts.tsv")
VOICES = {"zh": ("cmn", "190"), "en": ("en-us", "160")}


def rows():
    with open(TABLE, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != 3 or not all(cols):
                sys.exit(f"{TABLE}:{n}: want name<TAB>Chinese<TAB>English, got {line!r}")
            yield cols


def make(text, lang, out):
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.wav")
        voice, speed = VOICES[lang]
        subprocess.run(["espeak-ng", "-v", voice, "-s", speed, "-w", raw, text], check=True)
        subprocess.run(
            ["sox", raw, "-r", "8000", "-c", "1", "-e", "u-law", out,
             "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse",
             "norm", "-1"],
            check=True,
        )


def main():
    for tool in ("espeak-ng", "sox"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt install espeak-ng sox")
    every = "--all" in sys.argv[1:]
    table_time = os.path.getmtime(TABLE)
    names = set()
    for name, zh, en in rows():
        names.add(name)
        for lang, text in (("zh", zh), ("en", en)):
            out = os.path.join(SOUNDS, f"{name}.{lang}.wav")
            if every or not os.path.exists(out) or os.path.getmtime(out) < table_time:
                make(text, lang, out)
                print(f"{out}: {text}")
    for f in sorted(os.listdir(SOUNDS)):
        if f.endswith(".wav") and f.split(".")[0] not in names:
            os.remove(os.path.join(SOUNDS, f))
            print(f"removed {f}: no longer in the table")


if __name__ == "__main__":
    main()
