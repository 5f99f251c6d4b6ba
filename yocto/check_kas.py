"""Checks the kas project files against kas's own schema (no checkout, no
network): run by `scripts/dev test` in the venv that holds kas."""

import pathlib
import sys

import jsonschema
import yaml
from kas.configschema import CONFIGSCHEMA

failed = False
for f in sorted(pathlib.Path(__file__).parent.joinpath("kas").glob("*.yml")):
    try:
        jsonschema.validate(yaml.safe_load(f.read_text()), CONFIGSCHEMA)
        print(f"{f}: kas schema OK")
    except jsonschema.ValidationError as e:
        print(f"{f}: {e.message} at {'/'.join(map(str, e.absolute_path))}", file=sys.stderr)
        failed = True
sys.exit(1 if failed else 0)
