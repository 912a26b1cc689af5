"""Prefect 3.8.8's server on SQLAlchemy 2.1: make its scheduler work again.

SQLAlchemy 2.1 passes every key of a bulk INSERT's parameter dicts that names a hybrid property
to that hybrid's `bulk_dml` hook, and raises "Can't evaluate bulk DML statement" when it has
none; 2.0 ignored such keys. Prefect's scheduler inserts scheduled flow runs, and their states,
from dicts that carry `state` and `data`, both hybrids on its ORM models, so every scheduling
pass fails and a cron schedule never produces a run (the API, the UI and runs started from them
are unaffected). `patch_orm()` gives those hybrids a hook that drops the key, which is what 2.0
did; on SQLAlchemy 2.0 it does nothing.

`python -m synthsmith.prefect_compat server start ...` is `prefect server start ...` with the fix;
`synthsmith serve --start-server` runs its server that way.
"""

from __future__ import annotations


def patch_orm() -> int:
    """Install the key-dropping bulk_dml hook on Prefect's ORM hybrids; returns how many it patched."""
    from sqlalchemy.ext.hybrid import HybridExtensionType

    from prefect.server.database import orm_models

    patched = 0
    for mapper in orm_models.Base.registry.mappers:
        for key, attr in mapper.all_orm_descriptors.items():
            if (getattr(attr, "extension_type", None) is HybridExtensionType.HYBRID_PROPERTY
                    and hasattr(attr, "bulk_dml_setter") and attr.bulk_dml_setter is None):
                attr.inplace.bulk_dml(_drop(key))
                patched += 1
    return patched


def _drop(key: str):
    def drop(cls, mapping: dict, value) -> None:  # mapping is SQLAlchemy's own copy of the row
        mapping.pop(key, None)

    return drop


if __name__ == "__main__":
    patch_orm()
    from prefect.cli import app

    app()
