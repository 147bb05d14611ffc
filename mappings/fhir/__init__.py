"""FHIR R4 (read with fhir.resources R4B models) <-> router commands; pure, no I/O."""
