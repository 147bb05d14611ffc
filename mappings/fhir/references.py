"""Reference resolution inside one FHIR payload (mappings): Bundle entries by ``fullUrl`` (``urn:uuid:``)
or ``Type/id``, contained resources by ``#id``; plus Identifier look-ups by v2-0203 type code."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference
from fhir_core.fhirabstractmodel import FHIRAbstractModel

from mappings.fhir.wire import M, Raw, validate
from router.domain.errors import MappingError


class Resolver:
    """Finds what a reference points at; validates each resource once, when it is first used."""

    def __init__(self, entries: Sequence[tuple[str | None, Raw]]) -> None:
        self.entries = entries
        self._by_key: dict[str, Raw] = {}
        for full_url, res in entries:
            if full_url:
                self._by_key.setdefault(full_url, res)
            if isinstance(res.get("id"), str):
                self._by_key.setdefault(f"{res['resourceType']}/{res['id']}", res)
        self._models: dict[int, FHIRAbstractModel] = {}

    def find(self, reference: str | None, owner: Raw | None = None) -> Raw | None:
        if not reference:
            return None
        if reference.startswith("#"):
            contained = (owner or {}).get("contained") or []
            return next((c for c in contained if isinstance(c, dict) and c.get("id") == reference[1:]), None)
        ref = reference.split("/_history/")[0]
        hit = self._by_key.get(ref)
        if hit is None and "://" in ref:  # an absolute URL: its tail is Type/id
            hit = self._by_key.get("/".join(ref.rsplit("/", 2)[-2:]))
        return hit

    def model(self, raw: Raw, model: type[M], prefix: str | None = None) -> M:
        cached = self._models.get(id(raw))
        if cached is None:
            cached = self._models[id(raw)] = validate(raw, model, prefix)
            # Contained resources were validated with their parent: keep those models, don't validate twice.
            for child_raw, child in zip(raw.get("contained") or [], getattr(cached, "contained", None) or [],
                                        strict=False):
                if isinstance(child_raw, dict) and type(child).__name__ == child_raw.get("resourceType"):
                    self._models.setdefault(id(child_raw), child)
        if not isinstance(cached, model):
            raise MappingError(f"expected a {model.__name__}", location=prefix or model.__name__)
        return cached

    def resolve(self, ref: Reference | None, model: type[M], owner: Raw, location: str) -> tuple[Raw, M] | None:
        """The resource ``ref`` points at, if it is in this payload; a wrong type is an error."""
        raw = self.find(ref.reference if ref else None, owner)
        if raw is None:
            return None
        if raw.get("resourceType") != model.__name__:
            raise MappingError(f"reference points at a {raw.get('resourceType')}, expected {model.__name__}",
                               location=location)
        return raw, self.model(raw, model)

    def referring(self, resource_type: str, element: str, target: Raw) -> list[Raw]:
        """Resources of ``resource_type`` whose ``element`` reference(s) point at ``target``."""
        found: list[Raw] = []
        for _, res in self.entries:
            candidates = [res, *[c for c in res.get("contained") or [] if isinstance(c, dict)]]
            for cand in candidates:
                if cand.get("resourceType") != resource_type:
                    continue
                refs: Any = cand.get(element)
                for ref in refs if isinstance(refs, list) else [refs]:
                    if isinstance(ref, dict) and self.find(ref.get("reference"), res) is target:
                        found.append(cand)
                        break
        return found


def typed_value(identifiers: Iterable[Identifier] | None, code: str) -> str:
    """Value of the first identifier whose type has ``code`` (v2-0203: MR, AN, VN, MB ...)."""
    for ident in identifiers or ():
        codings = ident.type.coding if ident.type and ident.type.coding else []
        if ident.value and any(c.code == code for c in codings):
            return str(ident.value)
    return ""


def first_value(identifiers: Iterable[Identifier] | None) -> str:
    return next((str(i.value) for i in identifiers or () if i.value), "")


def logical_value(ref: Reference | None, code: str | None = None) -> str:
    """A logical reference's identifier value (``{"identifier": {...}}``), optionally of type ``code``."""
    if ref is None or ref.identifier is None or not ref.identifier.value:
        return ""
    if code is None:
        return str(ref.identifier.value)
    return typed_value([ref.identifier], code)
