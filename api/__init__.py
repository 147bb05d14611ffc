"""Top layer: FastAPI app, the rcmhub CLI and process wiring."""
