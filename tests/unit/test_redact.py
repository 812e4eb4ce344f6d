"""meshgate.redact: what the failure bundle masks, and what it leaves alone.

Known secret values (those of the namespace's Secrets) are masked wherever they appear;
credential-shaped text is masked even when its value is not known; ordinary mesh text —
service FQDNs, Envoy cluster and route names with ``|``, pod specs without credentials —
comes through unchanged, so a bundle stays readable.
"""

from __future__ import annotations

import base64
import json

import pytest

from meshgate.redact import MASK, Redactor
from tests.support import GOLDEN, needs_golden


@pytest.fixture
def r() -> Redactor:
    return Redactor()


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize(("text", "secret"), [
    ("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.payload.sig", "eyJhbGciOiJSUzI1NiJ9"),
    ("authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
    ("Proxy-Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
    ('{"Authorization": "Bearer abcdefgh12345", "Host": "x"}', "abcdefgh12345"),
    ('{"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}', "dXNlcjpwYXNzd29yZA"),
    ("{'Authorization': 'Digest username=\"u\", response=\"6629fae4\"'}", "6629fae4"),
    ("curl -H 'Authorization: Bearer abcdefgh12345' https://127.0.0.1:6443/api",
     "abcdefgh12345"),
    ("Cookie: session=9f8e7d6c5b; csrftoken=1a2b3c4d", "9f8e7d6c5b"),
    ("Cookie: session=9f8e7d6c5b; csrftoken=1a2b3c4d", "1a2b3c4d"),
    ("Set-Cookie: session=9f8e7d6c5b; Path=/; HttpOnly", "9f8e7d6c5b"),
    ('{"Cookie": "session=9f8e7d6c5b", "Host": "x"}', "9f8e7d6c5b"),
])
def test_authorization_and_cookie_headers_are_masked(r: Redactor, text: str,
                                                     secret: str) -> None:
    out = r.text(text)
    assert secret not in out and MASK in out, out


def test_bearer_tokens_are_masked_anywhere(r: Redactor) -> None:
    out = r.text("request failed with bearer sha256~Zm9vYmFyYmF6cXV4 (401)")
    assert "Zm9vYmFyYmF6cXV4" not in out
    assert out == f"request failed with bearer {MASK} (401)"


def test_a_header_keeps_its_name_and_the_json_its_shape(r: Redactor) -> None:
    assert r.text("Authorization: Bearer abc.def.ghi") == f"Authorization: {MASK}"
    doc = {"headers": {"Authorization": "Bearer abcdefgh12345", "Cookie": "a=b; c=d",
                       "Host": "composer"}}
    out = json.loads(r.text(json.dumps(doc, indent=2)))
    assert out == {"headers": {"Authorization": MASK, "Cookie": MASK, "Host": "composer"}}


# --------------------------------------------------------------------------- fields


@pytest.mark.parametrize(("text", "expected"), [
    ("token: abcdef123", f"token: {MASK}"),
    ("  password: hunter2 with spaces", f"  password: {MASK}"),
    ("enrollSecret: s3cr3t", f"enrollSecret: {MASK}"),
    ("x-api-key: abcdefghijk", f"x-api-key: {MASK}"),
    ('{"token": "abc123xyz", "name": "x"}', f'{{"token": "{MASK}", "name": "x"}}'),
    ('{"password":"p@ss w0rd"}', f'{{"password":"{MASK}"}}'),
    ('{"enrollSecret": "s3cr3t", "enrollId": "admin"}',
     f'{{"enrollSecret": "{MASK}", "enrollId": "admin"}}'),
    ("{'password': 'p@ss w0rd', 'user': 'bob'}", f"{{'password': '{MASK}', 'user': 'bob'}}"),
    ('"client-key-data": "LS0tLS1CRUdJTiBFQw=="', f'"client-key-data": "{MASK}"'),
    ('token = "quoted value with spaces"', f'token = "{MASK}"'),
    ("--token=abc123 --port=8080", f"--token={MASK} --port=8080"),
    ("id_token=abc123 state=1", f"id_token={MASK} state=1"),
])
def test_token_and_password_fields_are_masked(r: Redactor, text: str, expected: str) -> None:
    assert r.text(text) == expected


def test_yaml_and_json_documents_keep_their_structure(r: Redactor) -> None:
    yaml_doc = "user: admin\npassword: hunter2\ntoken: abc.def\nport: 8080\n"
    assert r.text(yaml_doc) == f"user: admin\npassword: {MASK}\ntoken: {MASK}\nport: 8080\n"
    doc = {"user": "admin", "password": "hunter2", "token": None, "nested": {"secret": 42}}
    out = json.loads(r.text(json.dumps(doc, indent=2)))
    assert out == {"user": "admin", "password": MASK, "token": None,
                   "nested": {"secret": MASK}}


# --------------------------------------------------------------------------- env


@pytest.mark.parametrize(("text", "expected"), [
    ("COMPOSER_ADMIN_SECRET=Xurw3yU9zI0l", f"COMPOSER_ADMIN_SECRET={MASK}"),
    ("API_TOKEN=abc123 PORT=8080", f"API_TOKEN={MASK} PORT=8080"),
    ('API_TOKEN="two words" PORT=8080', f'API_TOKEN="{MASK}" PORT=8080'),
    ("export DB_PASSWORD='hunter2'", f"export DB_PASSWORD='{MASK}'"),
    ("CORE_SECURITY_ENROLLSECRET=MwYpmSRjupbT", f"CORE_SECURITY_ENROLLSECRET={MASK}"),
    ("MY_SECRET_VALUE=abc", f"MY_SECRET_VALUE={MASK}"),
    ("GITHUB_API_KEY=ghp_123456", f"GITHUB_API_KEY={MASK}"),
])
def test_secret_env_assignments_are_masked(r: Redactor, text: str, expected: str) -> None:
    assert r.text(text) == expected


def test_env_entries_of_a_pod_spec_are_masked(r: Redactor) -> None:
    env = [{"name": "API_TOKEN", "value": "abc def"}, {"name": "PORT", "value": "8080"},
           {"name": "COMPOSER_ADMIN_SECRET", "valueFrom": {"secretKeyRef": {
               "name": "composer-credentials", "key": "COMPOSER_ADMIN_SECRET"}}}]
    out = json.loads(r.text(json.dumps({"env": env}, indent=2)))
    assert out == {"env": [{"name": "API_TOKEN", "value": MASK}, env[1], env[2]]}
    yaml_env = "- name: API_TOKEN\n  value: abc def\n- name: PORT\n  value: \"8080\"\n"
    assert r.text(yaml_env) == f"- name: API_TOKEN\n  value: {MASK}\n- name: PORT\n" \
                               "  value: \"8080\"\n"


def test_url_credentials_are_masked(r: Redactor) -> None:
    assert r.text("postgres://app:hunter2@db:5432/ledger") == \
        f"postgres://app:{MASK}@db:5432/ledger"
    assert r.text("http://vp0:7050/chain/blocks/0") == "http://vp0:7050/chain/blocks/0"


# --------------------------------------------------------------------------- known values


def test_known_secrets_are_masked_raw_and_inside_larger_strings() -> None:
    r = Redactor(["Xurw3yU9zI0l", "MwYpmSRjupbT"])
    assert r.text("Xurw3yU9zI0l") == MASK
    assert r.text("enrolled admin/Xurw3yU9zI0l at vp0") == f"enrolled admin/{MASK} at vp0"
    assert r.text("prefixMwYpmSRjupbTsuffix") == f"prefix{MASK}suffix"
    assert r.text('{"profile": {"admin": "Xurw3yU9zI0l"}}') == \
        f'{{"profile": {{"admin": "{MASK}"}}}}'


def test_known_secrets_are_masked_base64_encoded_and_json_escaped() -> None:
    secret = 'pa"ss\\word42'
    r = Redactor([secret])
    encoded = base64.b64encode(secret.encode()).decode()
    assert r.text(f"data: {{KEY: {encoded}}}") == f"data: {{KEY: {MASK}}}"
    assert r.text(json.dumps({"admin": secret})) == f'{{"admin": "{MASK}"}}'


def test_the_longest_secret_is_masked_whole() -> None:
    r = Redactor(["abcd", "abcdefgh"])
    assert r.text("x abcdefgh y") == f"x {MASK} y"


def test_short_values_are_not_treated_as_secrets() -> None:
    r = Redactor(["abc", ""])
    assert r.text("abc and abcdef") == "abc and abcdef"


def test_secret_objects_teach_their_values() -> None:
    r = Redactor()
    r.add_secret_objects([
        {"kind": "Secret", "data": {"a": base64.b64encode(b"from-data-1").decode(),
                                    "bin": base64.b64encode(b"\xff\xfe\xfd\xfc").decode()}},
        {"kind": "Secret", "stringData": {"b": "from-stringData-2"}},
        {"kind": "Secret"},
    ])
    out = r.text("from-data-1 from-stringData-2 " + base64.b64encode(b"from-data-1").decode())
    assert out == f"{MASK} {MASK} {MASK}"
    # A binary value cannot be searched for as text, but its encoded form is masked.
    assert r.text(base64.b64encode(b"\xff\xfe\xfd\xfc").decode()) == MASK


def test_masking_twice_changes_nothing_more() -> None:
    r = Redactor(["Xurw3yU9zI0l"])
    text = 'Authorization: Bearer abcdefgh123\n{"password": "x y"}\nAPI_TOKEN=1 Xurw3yU9zI0l'
    once = r.text(text)
    assert r.text(once) == once


# --------------------------------------------------------------------------- left alone


@pytest.mark.parametrize("text", [
    "composer.ns.svc.cluster.local",
    "composer.mg-1a2b-main-b28b.svc.cluster.local:8080",
    "outbound|8080||composer.mg-1.svc.cluster.local",
    "outbound|7050|v1|vp0.mg-1.svc.cluster.local",
    "inbound|8080||",
    "virtualOutbound 0.0.0.0_8080 http.8080 *:80",
    'istio_requests_total{reporter="destination",source_workload="composer"} 3',
    "GET /login 200 via ingress (Host composer.example)",
    "token_count: 5",
    "tokens: 12",
    "a bearer of news",
    "secretKeyRef: {name: composer-credentials, key: COMPOSER_ADMIN_SECRET}",
    '"secret": {"secretName": "istio-ca"}',
    '"automountServiceAccountToken": false,',
    '"token": null',
    "password:\n  nested: 1",
    "Error: secret \"composer-credentials\" not found",
    "key: value",
    "grpc://membersrvc:7054",
])
def test_ordinary_text_is_left_unchanged(r: Redactor, text: str) -> None:
    assert r.text(text) == text


def test_known_secrets_do_not_disturb_ordinary_text() -> None:
    r = Redactor(["Xurw3yU9zI0l"])
    text = "outbound|8080||composer.mg-1.svc.cluster.local\nroute config '8080'"
    assert r.text(text) == text


@needs_golden
def test_real_istio_config_dumps_and_pods_are_left_unchanged(r: Redactor) -> None:
    """Upstream Istio config dumps, an injected pod and a Kiali graph hold no credential:
    the patterns must not touch them (a bundle a reviewer cannot read is no bundle)."""
    files = [p for p in GOLDEN.rglob("*") if p.suffix in (".json", ".yaml")]
    assert files
    changed = [p.name for p in files if r.text(p.read_text()) != p.read_text()]
    assert changed == []
