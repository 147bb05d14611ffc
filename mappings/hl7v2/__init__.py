"""HL7 v2 (ER7) decoding and encoding."""
