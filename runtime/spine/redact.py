"""The one redaction of credentials in a source's text (an RTSP/HTTP URL, a GStreamer pipeline): a
camera URL's `user:pass@` and secret query parameters never leave the process. Every place that
shows a source (stderr lines, JSON lines, CSV, the summary, the page, /healthz, /api/*) shows
`redact_url(text)`, through live.sources.Source.shown; only cv2.VideoCapture gets the real text."""

from __future__ import annotations

import re

MASK = "***"

# scheme://USERINFO@ : the userinfo runs to the last '@' before the first '/', '?' or '#', as
# FFmpeg's URL parser reads it (a password may hold an unescaped '@').
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")

# name=value where the name ends in a secret's word: ?token=..., &password=..., ;api_key=..., and
# GStreamer's rtspsrc user-pw=... (space-separated properties); `key-int-max=30` is left alone. The
# value runs to the next separator.
_SECRET_WORDS = ("token|pass|passwd|password|passphrase|pw|pwd|secret|key|auth|sig|signature|credentials?"
                 "|sessionid|session")
_SECRET_NAMES = rf"[a-z0-9_.-]*(?:{_SECRET_WORDS})"
_SECRET_PARAM = re.compile(rf"(?i)((?:^|[?&;\s])(?:{_SECRET_NAMES})=)(\"[^\"]*\"|'[^']*'|[^&;#\s\"']*)")


def redact_url(text: str) -> str:
    """`text` with every URL's `user:pass@` as `***@` and every secret-named parameter's value as
    `***`. Text without either comes back unchanged (file paths, camera indices)."""
    if "@" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    return _SECRET_PARAM.sub(rf"\g<1>{MASK}", text)
