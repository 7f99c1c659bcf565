"""Development keys: generated once into the data folder, reused by every later process."""

import json
import os
import secrets
from pathlib import Path

KEY_NAMES = (
    "SECRET_KEY",
    "JWT_SIGNING_KEY",
    "USER_TOKEN_HASH_KEY",
    "SIGNING_KEY_ENCRYPTION_KEY",
)


def development_keys(data_dir: Path) -> dict[str, str]:
    path = data_dir / "dev-keys.json"
    try:
        keys = json.loads(path.read_text())
    except FileNotFoundError:
        keys = {}
    missing = [name for name in KEY_NAMES if not keys.get(name)]
    if not missing:
        return keys
    keys.update({name: secrets.token_urlsafe(48) for name in missing})
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(keys, indent=2))
    tmp.chmod(0o600)
    try:
        if path.exists():
            tmp.replace(path)  # completing an older file that lacked a key
        else:
            os.link(tmp, path)  # atomic create: two first starts never keep different keys
    except FileExistsError:
        return development_keys(data_dir)
    finally:
        tmp.unlink(missing_ok=True)
    return keys
