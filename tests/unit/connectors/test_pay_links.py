"""Pay-link signing on its own: one key per data directory, shared by processes that start together."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from connectors.notify.links import LinkExpired, LinkInvalid, LinkSigner, load_or_create_secret, new_link_id
from router.domain.errors import MappingError


def test_processes_starting_together_agree_on_one_private_key(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "pay-link.key"
    keys: list[str] = []
    threads = [threading.Thread(target=lambda: keys.append(load_or_create_secret(path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(keys) == 8 and len(set(keys)) == 1 and len(keys[0]) >= 32
    assert path.stat().st_mode & 0o077 == 0
    assert load_or_create_secret(path) == keys[0]  # a restart keeps the links it signed valid


def test_a_link_signed_by_one_process_opens_in_another_until_it_expires(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    secret = load_or_create_secret(tmp_path / "k")
    link = new_link_id()
    token = LinkSigner(secret, 3600, clock=lambda: now[0]).token(link)
    reader = LinkSigner(load_or_create_secret(tmp_path / "k"), 3600, clock=lambda: now[0])
    assert reader.link_id(token) == link
    now[0] += 3601
    with pytest.raises(LinkExpired):
        reader.link_id(token)
    with pytest.raises(LinkInvalid):
        LinkSigner("another secret of at least 32 chars!!", 3600, clock=lambda: now[0]).link_id(token)


def test_a_short_secret_is_refused_naming_the_setting() -> None:
    with pytest.raises(MappingError) as caught:
        LinkSigner("too short", 60)
    assert caught.value.location == "pay_link_secret"
