"""Keeping secrets out of logs, reports and failure bundles.

Two layers: the values of the namespace's Secrets are known and replaced wherever they
appear (raw, base64-encoded as in a Secret's ``data``, and JSON-escaped); and anything
shaped like a credential is masked even when its value is not known:

* ``Authorization``/``Proxy-Authorization`` headers, whatever the scheme (Bearer, Basic, …),
  and bearer tokens anywhere;
* ``Cookie``/``Set-Cookie`` headers;
* ``token``/``password``/``secret``/``api_key``/enrolment-secret/kubeconfig-key fields in
  YAML, JSON and Python reprs (a quoted value is masked to its closing quote, an unquoted
  YAML or log value to the end of its line);
* ``*_SECRET=``/``*_TOKEN=``/``*_PASSWORD=`` environment assignments, and env entries
  ``{"name": "API_TOKEN", "value": "…"}`` of a pod spec;
* the password of a ``scheme://user:password@host`` URL.

Nested objects (``"secret": {"secretName": …}`` in a pod's volumes) are not values and are
left intact, and so is ordinary mesh text (service FQDNs, Envoy cluster names with ``|``).
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Iterable

MASK = "<redacted>"
MIN_SECRET_LENGTH = 4

# A quoted value, to its closing quote (escapes allowed inside double quotes).
_QUOTED = r"\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'"
# A field name that holds a credential (as a whole name or its suffix: ``id_token``,
# ``X-Auth-Token``, ``client_secret``), never a longer word (``secretName``, ``tokens``).
_FIELD = (r"[A-Za-z0-9_.-]*(?:token|password|passwd|secret|api[-_]?key|private[-_]?key|"
          r"client-key-data|client-certificate-data|enrollsecret|enroll_secret)")
# An environment variable name that holds a credential.
_ENV_NAME = r"[A-Za-z0-9_]*(?:SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY)[A-Za-z0-9_]*"
_SCALAR_END = r"(?!null\b|true\b|false\b)"  # JSON literals hold nothing to hide

_JSON_FIELD = re.compile(r"(?i)(['\"]" + _FIELD + r"['\"]\s*[:=]\s*)" + _SCALAR_END +
                         r"(?![\[{])(" + _QUOTED + r"|[^\s,}\]]+)")
_PATTERNS = [
    # Authorization headers, any scheme, in a header line, JSON or a Python repr.
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*)(" + _QUOTED +
               r"|(?:[A-Za-z0-9-]+\s+)?[^\s\"',;}]+)"),
    # Bearer tokens anywhere else (a curl line, an error message).
    re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/=-]{8,})"),
    # Cookies: the whole header value.
    re.compile(r"(?i)((?:set-)?cookie['\"]?\s*[:=]\s*)(" + _QUOTED + r"|[^\n\"']+)"),
    # A pod spec's env entry whose name is a credential: the value that follows the name.
    re.compile(r"(?i)((?<![\w-])['\"]?name['\"]?\s*:\s*['\"]?" + _ENV_NAME +
               r"['\"]?\s*,?\s*['\"]?value['\"]?\s*:\s*)(" + _QUOTED +
               r"|[^\s,}]+(?:[ \t]+[^\s,}]+)*)"),
    # Quoted field names (JSON, Python reprs): a quoted value or a bare scalar.
    _JSON_FIELD,
    # Unquoted field names: ``key=value`` up to a space, ``key: value`` (YAML, log lines)
    # to the end of the line.
    re.compile(r"(?i)(?<![\w'\"-])(" + _FIELD + r"\s*=\s*)(?![\[{])(" + _QUOTED +
               r"|[^\s\"',;}]+)"),
    re.compile(r"(?i)(?<![\w'\"-])(" + _FIELD + r"\s*:[ \t]*)(?![\[{\s])(" + _QUOTED +
               r"|[^\n]*[^\s])"),
    # Environment assignments: DB_PASSWORD=…, export API_TOKEN="…".
    re.compile(r"(?i)(\b" + _ENV_NAME + r"=)(" + _QUOTED + r"|[^\s\"']+)"),
    # URL credentials: scheme://user:password@host.
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@\"']+:)([^/\s@\"']+)(?=@)"),
]


def _mask(value: str) -> str:
    """The mask, keeping the quotes of a quoted value so JSON and YAML stay readable."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[0] + MASK + value[0]
    return MASK


def _mask_scalar(value: str) -> str:
    """The mask of a JSON value: a bare scalar (a number) becomes a string, so the
    document still parses."""
    masked = _mask(value)
    return masked if masked != MASK else f'"{MASK}"'


def _forms(secret: str) -> set[str]:
    """The ways a secret's value is written down: as is, base64-encoded (a Secret's
    ``data``, with and without padding) and JSON-escaped."""
    raw = secret.encode()
    b64 = base64.b64encode(raw).decode()
    forms = {secret, b64, json.dumps(secret)[1:-1]}
    if len(b64.rstrip("=")) >= MIN_SECRET_LENGTH * 2:
        forms.add(b64.rstrip("="))
    return forms


class Redactor:
    """Replaces known secret values and credential-shaped text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        self._known: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Learn more secret values."""
        self._known |= {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        forms = {f for s in self._known for f in _forms(s)}
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted((f for f in forms if len(f) >= MIN_SECRET_LENGTH), key=len,
                              reverse=True)

    def add_secret_objects(self, objects: Iterable[dict]) -> None:
        """Learn the values of Secret objects (``data`` decoded, and ``stringData``)."""
        values = []
        for obj in objects:
            for v in (obj.get("data") or {}).values():
                if not isinstance(v, str):
                    continue
                values.append(v)  # the encoded form, should a Secret itself be written
                try:
                    values.append(base64.b64decode(v).decode())
                except (ValueError, UnicodeDecodeError):
                    continue
            values += [str(v) for v in (obj.get("stringData") or {}).values()]
        self.add(values)

    def text(self, s: str) -> str:
        for secret in self.secrets:
            s = s.replace(secret, MASK)
        for pat in _PATTERNS:
            mask = _mask_scalar if pat is _JSON_FIELD else _mask
            s = pat.sub(functools.partial(_keep_prefix, mask=mask), s)
        return s


def _keep_prefix(m: re.Match[str], mask: Callable[[str], str]) -> str:
    """A match's first group as it is, its second masked."""
    return m.group(1) + mask(m.group(2))
