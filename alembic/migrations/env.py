"""Alembic's environment, run by `modules.persistence.migrate`.

The database is the shared settings' `database_url`: the migrate command passes the Settings in
`config.attributes["settings"]`. Offline mode (`--sql`) renders SQL without connecting.
"""

from alembic import context

import modules.persistence.models  # noqa: F401 (defining the tables registers them on the MetaData)
from modules.persistence.base import Base
from modules.persistence.engine import connect, create_sync_database_engine
from modules.settings import Settings

AUTOGENERATE_PLUGINS = ["alembic.autogenerate.*", "alembic.ext.checkconstraint_byname"]

settings: Settings = context.config.attributes["settings"]

if context.is_offline_mode():
    context.configure(
        url=str(settings.database_url),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        target_metadata=Base.metadata,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_sync_database_engine(settings)
    try:
        with connect(engine) as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                # What `check` and autogenerate compare besides tables, columns and indexes.
                compare_type=True,
                compare_server_default=True,
                # Opt-in: CHECK constraints are compared by name (not by expression).
                autogenerate_plugins=AUTOGENERATE_PLUGINS,
                # `forge-migrate upgrade` reports when no revision was applied.
                on_version_apply=context.config.attributes.get("on_version_apply"),
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
