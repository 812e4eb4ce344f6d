"""Keeping secrets out of logs, reports and failure bundles.

Two layers: the values of the namespace's Secrets are known and replaced wherever they
appear; and anything shaped like a credential (bearer tokens, ``Authorization``/``Cookie``
headers, ``token:``/``password:``/``secret:`` fields, enrolment secrets in env vars) is
masked even when its value is not known.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

MASK = "<redacted>"
_PATTERNS = [
    re.compile(r"(?i)(authorization\s*[:=]\s*)(bearer\s+)?[^\s\"',]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(cookie\s*[:=]\s*)[^\n\"]+"),
    re.compile(r"(?i)(\"?(?:token|password|passwd|secret|enrollsecret|enroll_secret|"
               r"client-key-data|client-certificate-data)\"?\s*[:=]\s*\"?)[^\s\",}]+"),
    re.compile(r"(?i)((?:[A-Z0-9_]*(?:SECRET|TOKEN|PASSWORD|PASSWD)[A-Z0-9_]*)=)[^\s\"']+"),
]


class Redactor:
    """Replaces known secret values and credential-shaped text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len,
                              reverse=True)

    def add_secret_objects(self, objects: Iterable[dict]) -> None:
        values = set(self.secrets)
        for obj in objects:
            for v in (obj.get("data") or {}).values():
                try:
                    values.add(base64.b64decode(v).decode())
                except (ValueError, UnicodeDecodeError):
                    continue
            for v in (obj.get("stringData") or {}).values():
                values.add(str(v))
        self.secrets = sorted({s for s in values if s and len(s) >= 4}, key=len,
                              reverse=True)

    def text(self, s: str) -> str:
        for secret in self.secrets:
            s = s.replace(secret, MASK)
        for pat in _PATTERNS:
            s = pat.sub(lambda m: m.group(1) + MASK, s)
        return s
