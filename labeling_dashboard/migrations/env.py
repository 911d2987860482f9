"""Alembic's entry point; the store hands it an open connection (``config.attributes``)."""

from alembic import context

from labeling_dashboard.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
