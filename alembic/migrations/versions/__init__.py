"""Alembic revisions, oldest first by `down_revision`; files are named `rev_<id>_<slug>.py`."""
