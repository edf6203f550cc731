"""The live account groups and quantity multipliers: the config file's, with what the API set over them.

A group set through the API replaces the config file's group of that name; a group deleted through the API
stays deleted, even when the config file still defines it. Both survive restarts (engine/store/overrides.py).
Risk limits are not affected: group_risk applies to the groups as the config file lists them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from engine.api import validation
from engine.config import NAME_PATTERN, NAME_RULE, AccountSettings
from engine.errors import InvalidArgument, NotFound
from engine.risk.states import Scope, ScopeKind
from engine.security.principal import Principal
from engine.store.overrides import OverrideStore

MAX_MULTIPLIER = Decimal(1000)


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    accounts: tuple[str, ...]
    source: str  # "config" or "api"


class AccountRegistry:
    def __init__(
        self,
        accounts: Sequence[AccountSettings],
        store: OverrideStore,
        groups: Mapping[str, Group],
        multipliers: Mapping[str, Decimal],
    ) -> None:
        self._accounts = [a.id for a in accounts]
        self._store = store
        self._groups = dict(groups)
        self._multipliers = dict(multipliers)

    @classmethod
    async def load(cls, accounts: Sequence[AccountSettings], store: OverrideStore) -> AccountRegistry:
        """The config's groups and multipliers, then the API's: set groups replace, deleted ones go."""
        groups: dict[str, Group] = {}
        for account in accounts:
            for name in account.groups:
                known = groups.get(name)
                members = (*known.accounts, account.id) if known else (account.id,)
                groups[name] = Group(name, members, "config")
        for override in await store.groups():
            if override.deleted:
                groups.pop(override.name, None)
            else:
                groups[override.name] = Group(override.name, override.accounts, "api")
        multipliers = {a.id: a.multiplier for a in accounts} | await store.multipliers()
        return cls(accounts, store, groups, multipliers)

    @property
    def accounts(self) -> list[str]:
        return list(self._accounts)

    def listed(self) -> list[Group]:
        """Every group, with where its definition came from, by name."""
        return [self._groups[name] for name in sorted(self._groups)]

    def groups(self) -> dict[str, list[str]]:
        """Each group's members in order, by name."""
        return {g.name: list(g.accounts) for g in self.listed()}

    def members(self, group: str) -> list[str]:
        found = self._groups.get(group)
        if found is None:
            known = ", ".join(sorted(self._groups)) or "there are none"
            raise InvalidArgument("group", f"unknown account group {group!r} (groups: {known})")
        return list(found.accounts)

    def scope_accounts(self, scope: Scope, field: str = "scope.name") -> list[str]:
        """The accounts a scope covers now (GLOBAL: every account). Trading states, the kill switch, strategies
        and the strategy runner all ask here, so they agree on what a scope is; a scope naming nothing that
        exists is refused, naming `field`."""
        if scope.kind is ScopeKind.GLOBAL:
            if scope.name:
                raise InvalidArgument(field, "must be empty for the global scope")
            return self.accounts
        name = validation.text(field, scope.name, required=True)
        if scope.kind is ScopeKind.ACCOUNT:
            return [self.require_account(field, name)]
        try:
            return self.members(name)
        except InvalidArgument as exc:
            raise InvalidArgument(field, exc.problem) from None

    def usable_scope_accounts(self, scope: Scope, caller: Principal, field: str = "scope.name") -> list[str]:
        """The scope's accounts as `caller` may act on them: GLOBAL means the caller's own accounts; a group or
        account the caller cannot use entirely is refused (PermissionDenied) rather than acted on in part."""
        accounts = self.scope_accounts(scope, field)
        if scope.kind is ScopeKind.GLOBAL:
            return caller.visible(accounts)
        for account in accounts:
            caller.require(account)
        return accounts

    def groups_of(self, account: str) -> list[str]:
        """The groups the account is in, by name."""
        return [g.name for g in self.listed() if account in g.accounts]

    def multiplier(self, account: str) -> Decimal:
        return self._multipliers[account]

    def require_account(self, field: str, account: str) -> str:
        if account not in self._multipliers:
            raise InvalidArgument(field, f"unknown account {account!r} (accounts: {', '.join(self._accounts)})")
        return account

    async def set_group(self, name: str, accounts: Sequence[str]) -> Group:
        """Create the group or replace its members (persisted first); members keep the given order."""
        if not NAME_PATTERN.match(name):
            raise InvalidArgument("name", NAME_RULE)
        if not accounts:
            raise InvalidArgument("accounts", "at least one account is required")
        for account in accounts:
            self.require_account("accounts", account)
        repeated = sorted({a for a in accounts if accounts.count(a) > 1})
        if repeated:
            raise InvalidArgument("accounts", f"listed more than once: {', '.join(repeated)}")
        await self._store.set_group(name, list(accounts))
        group = self._groups[name] = Group(name, tuple(accounts), "api")
        return group

    async def delete_group(self, name: str) -> None:
        """Forget the group, a configured one included, for good (persisted first)."""
        if name not in self._groups:
            raise NotFound(f"group {name!r} not found")
        await self._store.delete_group(name)
        del self._groups[name]

    async def set_multiplier(self, account: str, value: Decimal) -> Decimal:
        self.require_account("account", account)
        if not value.is_finite() or not 0 <= value <= MAX_MULTIPLIER:
            raise InvalidArgument("multiplier", f"must be between 0 and {MAX_MULTIPLIER}, got {value}")
        await self._store.set_multiplier(account, value)
        self._multipliers[account] = value
        return value
