"""Ingest: one module per wire format, all feeding one batch writer into the store.

Each format module turns a payload into a ``core.batch.WriteBatch`` (decode -> validate ->
Arrow) and raises ``SchemaError``/``DecodeError`` naming the field at fault; nothing is
written until the whole payload has been validated.
"""
