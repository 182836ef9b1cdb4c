"""The WhatsApp groups the simulated business is in (Meta's Groups API): their subjects, descriptions and
participants, and the simulator's answer to "Get group info".

`GET /<GROUP_ID>?fields=<FIELDS>` answers as Meta's reference shows it
(https://developers.facebook.com/documentation/business-messaging/whatsapp/groups/reference#get-group-info):
`messaging_product` and `id` always, and of `subject`, `description`, `suspended`, `creation_timestamp`,
`participants` (`{"wa_id", "user_id"}` each, the business left out), `total_participant_count` and
`join_approval_mode` only those asked for. The webhooks about a group are built by
`envelopes.group_created_envelope` and `envelopes.group_settings_envelope`.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fiv_console.simulation.envelopes import simulated_user_id

_FIELDS = frozenset(
    {
        "subject",
        "description",
        "suspended",
        "creation_timestamp",
        "participants",
        "total_participant_count",
        "join_approval_mode",
    }
)


def new_group_id() -> str:
    """An id shaped like Meta's group ids: base64 of an opaque `capi_group:` key."""
    key = f"capi_group:{secrets.randbelow(10**11)}:{secrets.randbelow(10**18)}"
    return base64.b64encode(key.encode()).decode().rstrip("=")


@dataclass(slots=True)
class SimulatedGroup:
    id: str
    subject: str
    description: str | None = None
    participants: list[str] = field(default_factory=list)  # their numbers
    created_at: int = field(default_factory=lambda: int(time.time()))
    join_approval_mode: str = "auto_approve"
    suspended: bool = False

    @property
    def invite_link(self) -> str:
        return f"https://chat.whatsapp.com/{self.id[-22:]}"

    def info(self, fields: Iterable[str]) -> dict[str, Any]:
        """The Graph API's answer about the group, with the fields asked for that exist."""
        values: dict[str, Any] = {
            "subject": self.subject,
            "description": self.description,
            "suspended": self.suspended,
            "creation_timestamp": self.created_at,
            "participants": [{"wa_id": p, "user_id": simulated_user_id(p)} for p in self.participants],
            "total_participant_count": len(self.participants),
            "join_approval_mode": self.join_approval_mode,
        }
        answer: dict[str, Any] = {"messaging_product": "whatsapp", "id": self.id}
        for name in fields:
            if name in _FIELDS and values[name] is not None:
                answer[name] = values[name]
        return answer


class Groups:
    """The groups the simulated business is in, by id."""

    def __init__(self) -> None:
        self._groups: dict[str, SimulatedGroup] = {}

    def create(
        self,
        subject: str,
        *,
        group_id: str | None = None,
        description: str | None = None,
        participants: Iterable[str] = (),
    ) -> SimulatedGroup:
        group = SimulatedGroup(group_id or new_group_id(), subject, description, list(participants))
        self._groups[group.id] = group
        return group

    def get(self, group_id: str) -> SimulatedGroup | None:
        return self._groups.get(group_id)

    def rename(self, group_id: str, subject: str | None = None, description: str | None = None) -> SimulatedGroup:
        """A settings change of a group the business is in (a `KeyError` for another)."""
        group = self._groups[group_id]
        if subject is not None:
            group.subject = subject
        if description is not None:
            group.description = description
        return group
