"""Cookies refused by the HTTP clients the gateway and the broker share between callers.

One client serves every caller's calls to a target, so a cookie a target sets for one caller would ride
along on calls made for others (and, cookies ignoring ports, to other targets on the same host).
"""

from __future__ import annotations

from http.cookiejar import CookieJar, DefaultCookiePolicy


def refuse_cookies(jar: CookieJar) -> None:
    """From now on `jar` accepts no cookie from any domain (the client's own jar, changed in place)."""
    jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
