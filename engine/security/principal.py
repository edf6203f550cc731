"""Who is calling: the user behind an API token, their role and the accounts they own."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.errors import PermissionDenied
from engine.security.tokens import Role


@dataclass(frozen=True, slots=True)
class Principal:
    user: str
    role: Role
    token_id: str
    accounts: frozenset[str]
    """Accounts the user owns. Admins see and trade every account whatever this holds."""
    strategy: str = ""
    """The strategy acting in the user's name, when one is: only it may use its reserved order ids."""

    @property
    def label(self) -> str:
        """How the audit log and messages name the caller: the user and the token they used."""
        return f"{self.user} (token {self.token_id})"

    def may_use(self, account: str) -> bool:
        return self.role is Role.ADMIN or account in self.accounts

    def require(self, account: str) -> None:
        if not self.may_use(account):
            owned = ", ".join(sorted(self.accounts)) or "none"
            raise PermissionDenied(f"account {account} is not one of {self.user}'s accounts ({owned})")

    def visible(self, accounts: Iterable[str]) -> list[str]:
        """The given accounts this caller may see, in the given order."""
        return [a for a in accounts if self.may_use(a)]
