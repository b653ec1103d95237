"""Keep credentials out of every message: known secret values and anything shaped like a signature."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
# Signature-bearing fragments whatever their value: signed-URL query parameters, auth headers,
# connection-string parts and JSON private keys.
_PATTERNS = (
    re.compile(r"(?i)\b(x-amz-signature|x-amz-credential|x-amz-security-token|sig|signature|awsaccesskeyid|"
               r"x-goog-signature|x-goog-credential|skoid|sktid)=[^&\s;\"'<>,]+"),
    re.compile(r"(?i)\b(AccountKey|SharedAccessSignature|SharedAccessKey|Password|pwd)=[^;\s\"']+"),
    re.compile(r"(?i)\b(Bearer|SharedKey|SharedKeyLite)\s+[^\s\"',]+"),
    re.compile(r"(?i)(Credential=)[^,\s\"'&]+"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL),
    re.compile(r"(?i)\"(private_key|client_secret|refresh_token)\"\s*:\s*\"[^\"]*\""),
)
_MIN_SECRET = 4  # shorter values would mask ordinary words


def _mask_match(match: re.Match[str]) -> str:
    text = match.group(0)
    for sep in ("=", " ", ":"):
        if sep in text and not text.startswith(("-----", '"')):
            head = text.split(sep, 1)[0]
            return f"{head}{sep}{MASK}"
    if text.startswith('"'):
        return f'"{match.group(1)}": "{MASK}"'
    return MASK


class Scrubber:
    """Masks the given secret values (raw and URL-encoded) and every signature-shaped fragment."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= _MIN_SECRET:
                variants.update({secret, quote(secret, safe=""), quote_plus(secret), quote(secret)})
        # Longest first, so that a secret containing another is masked whole.
        self._secrets = sorted(variants, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(_mask_match, text)
        return text

    def extend(self, secrets: Iterable[str]) -> Scrubber:
        return Scrubber([*self._secrets, *secrets])
