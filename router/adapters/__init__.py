"""Persistence adapters: SQLAlchemy rows, repositories, engine set-up and Alembic migrations."""
