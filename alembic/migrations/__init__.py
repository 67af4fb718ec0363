"""Forge's Alembic environment and revisions, shipped as a package inside the api PEX.

Run them with `modules.persistence.migrate` (`forge-migrate`); there is no alembic.ini.
"""
