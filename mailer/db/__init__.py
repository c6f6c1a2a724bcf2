"""The SQL store: schema, engine and session factory, migrations, repository functions."""
