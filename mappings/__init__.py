"""Pure translation between wire formats (HL7 v2, FHIR, X12) and the router's commands and events."""
