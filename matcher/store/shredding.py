"""Crypto-shredding: personal details in the audit trail, encrypted with one key per person.

The audit trail is append-only and hash-chained, so an erasure cannot delete
what it says about the person without breaking the chain. Instead, a detail
naming the person's files, notes about them or their uploaders is stored
encrypted (AES-256-GCM) with a key of that person's; erasure destroys the key.
The chain still verifies over the ciphertext, and the detail can no longer be read.
"""

from __future__ import annotations

import base64
import os

from matcher.store.core import Database

PREFIX = "enc1:"


class PersonKeys:
    def __init__(self, database: Database):
        self.db = database

    def seal(self, person_id: int, text: str) -> str:
        """``text`` encrypted with the person's key (made on first use): ``enc1:<person id>:<base64>``."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = self._key(person_id) or self._new_key(person_id)
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, text.encode("utf-8"), _context(person_id))
        return f"{PREFIX}{person_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def open(self, stored: str | None) -> str | None:
        """A stored detail as it reads: decrypted, or said to be erased when its key is gone."""
        if stored is None or not stored.startswith(PREFIX):
            return stored
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        person, _, payload = stored[len(PREFIX):].partition(":")
        key = self._key(int(person))
        if key is None:
            return f"(erased with person:{person})"
        raw = base64.b64decode(payload)
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], _context(int(person))).decode("utf-8")
        except InvalidTag:
            return "(unreadable: the detail or its key was altered)"

    def destroy(self, person_id: int) -> None:
        with self.db.write():
            self.db.execute("DELETE FROM person_keys WHERE person_id = ?", [person_id])

    def _key(self, person_id: int) -> bytes | None:
        return self.db.one("SELECT key FROM person_keys WHERE person_id = ?", [person_id])

    def _new_key(self, person_id: int) -> bytes:
        """A new key for the person, or the one another writer made for them at the same moment."""
        with self.db.write():
            self.db.execute("INSERT INTO person_keys (person_id, key) VALUES (?, ?) ON CONFLICT DO NOTHING",
                            [person_id, os.urandom(32)])
            return self._key(person_id)


def _context(person_id: int) -> bytes:
    # Bound to the person: a detail copied under another person's entry does not decrypt.
    return f"person:{person_id}".encode()
