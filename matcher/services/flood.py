"""The flood guard: a person matching too many media in one scan (a bad reference, a look-alike)."""

from __future__ import annotations

from matcher.services.deciding import Decider
from matcher.store import Store


class FloodGuard:
    """Counts, per enrolled person, the media they matched in this scan; past the
    rules' limit, that person's matches of this scan are re-decided with the
    ``flood`` fact (the shipped rules send them to review)."""

    def __init__(self, store: Store, decider: Decider, scan_number: int):
        self.store, self.decider, self.scan_number = store, decider, scan_number
        self.limit = decider.policy.flood_limit
        self.media: dict[int, set[str]] = {}
        self.tripped: list[str] = []  # the names of the people it tripped for, in order

    def check(self, sha256: str | None, decided: dict[int, str]) -> None:
        """Count the people ``decided`` on in the media ``sha256`` just recorded."""
        if self.limit is None or sha256 is None:
            return
        for person_id in decided:
            if (person_id, self.scan_number) in self.decider.floods:
                continue
            seen = self.media.setdefault(person_id, set())
            seen.add(sha256)
            if len(seen) > self.limit:
                self.store.decisions.add_flood(person_id, self.scan_number, len(seen))
                self.decider.floods.add((person_id, self.scan_number))
                self.decider.redecide(self.store.decisions.media_of_person_in_scan(person_id, self.scan_number))
                self.tripped.append(self.decider.people[person_id].name)
                del self.media[person_id]
