"""A visitor to the dashboard over real HTTP, as a browser without JavaScript: it keeps its
cookies, follows no redirects and posts forms with the CSRF token of the page they are on."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    status: int
    body: str
    location: str | None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None


class Visitor:
    def __init__(self, base: str, *, cookie: str | None = None) -> None:
        """``cookie``: a ``Cookie`` header to send instead of the visitor's own (a replayed copy)."""
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.headers = {"Cookie": cookie} if cookie else {}
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirects)

    def open(self, path: str, form: dict[str, str] | None = None) -> Page:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=self.headers)
        try:
            with self.opener.open(request, timeout=30) as response:
                return Page(response.status, response.read().decode(), response.headers.get("Location"))
        except urllib.error.HTTPError as error:
            with error:
                return Page(error.code, error.read().decode(), error.headers.get("Location"))

    def csrf_token(self, page: str) -> str:
        """The CSRF token in the form on ``page`` (tied to this visitor's session cookie)."""
        match = re.search(r'name="csrf_token" value="([^"]+)"', self.open(page).body)
        assert match, f"no CSRF token on {page}"
        return match.group(1)

    def submit(self, page: str, action: str, form: dict[str, str]) -> Page:
        """Post ``form`` to ``action`` with the CSRF token found on ``page``."""
        return self.open(action, {**form, "csrf_token": self.csrf_token(page)})

    def sign_in(self, email: str, password: str) -> Page:
        return self.submit("/dashboard/login", "/dashboard/login", {"email": email, "password": password})

    @property
    def cookie(self) -> str:
        """This visitor's cookies as a ``Cookie`` header, to replay from elsewhere."""
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.jar)


def is_refused_sign_in(page: Page) -> bool:
    return page.status == 200 and "Wrong email or password" in page.body
