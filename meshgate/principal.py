"""Who is calling: the principal every request carries, whatever proved it (JWT or API key)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    tenant: str
    roles: tuple[str, ...] = ()
    issuer: str = ""
    """`jwt:<iss>`, `apikey` or `anonymous`: how the identity was established."""

    @property
    def is_anonymous(self) -> bool:
        return self.issuer == "anonymous"


ANONYMOUS = Principal(subject="anonymous", tenant="public", roles=(), issuer="anonymous")
