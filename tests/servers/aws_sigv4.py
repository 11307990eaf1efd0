"""Check an AWS Signature Version 4, as AWS does it, so the fake servers refuse a wrong secret.

Written from the published algorithm (canonical request -> string to sign -> HMAC chain), not
with botocore, so it checks the client rather than agreeing with it by construction.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl, quote

ALGORITHM = "AWS4-HMAC-SHA256"
BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
BAD_TOKEN = "The security token included in the request is invalid."


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def verify(
    *,
    method: str,
    raw_path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    keys: dict[str, tuple[str, str | None]],
    service: str,
    region: str,
) -> tuple[str, str] | None:
    """None when the request is signed with a known key; else (AWS error code, message).

    ``headers`` has lower-case names; ``keys`` maps access key id -> (secret, session token).
    """
    auth = headers.get("authorization", "")
    if not auth:
        return "MissingAuthenticationTokenException", "Missing Authentication Token"
    if not auth.startswith(ALGORITHM + " "):
        return "IncompleteSignatureException", f"Authorization header requires the {ALGORITHM} algorithm."
    try:
        parts = dict(p.strip().split("=", 1) for p in auth[len(ALGORITHM) + 1 :].split(","))
        akid, date, cred_region, cred_service, terminator = parts["Credential"].split("/")
        signed = parts["SignedHeaders"].split(";")
        signature = parts["Signature"]
        amz_date = headers["x-amz-date"]
    except (KeyError, ValueError):
        return "IncompleteSignatureException", "Authorization header is malformed."
    if terminator != "aws4_request" or cred_service != service or cred_region != region:
        return "InvalidSignatureException", f"Credential should be scoped to a valid region and service {service!r}."
    if akid not in keys:
        return "UnrecognizedClientException", BAD_TOKEN
    secret, token = keys[akid]
    if token is not None and headers.get("x-amz-security-token") != token:
        return "UnrecognizedClientException", BAD_TOKEN
    if "host" not in signed:
        return "InvalidSignatureException", "'Host' must be a signed header."
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(parse_qsl(query, keep_blank_values=True))
    )
    canonical_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    payload_hash = headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
    canonical_request = "\n".join(
        [method.upper(), quote(raw_path, safe="/~"), canonical_query, canonical_headers, ";".join(signed), payload_hash]
    )
    scope = f"{date}/{cred_region}/{cred_service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = _hmac(("AWS4" + secret).encode(), date)
    for part in (cred_region, cred_service, "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "InvalidSignatureException", BAD_SIGNATURE
    return None
